//! `kpl encode`: NDJSON user records in, the Kinesis records KPL would put out.

use std::io::{Read, Write};

use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};

use crate::args::EncodeArgs;
use crate::error::{CliError, Stop};
use crate::input::{parse_user_record_line, NumberedLines};
use crate::output::{write_line, EncodedLine};

/// The aggregator limits the arguments ask for (KPL's defaults for those not given).
pub fn config(args: &EncodeArgs) -> AggregatorConfig {
    let defaults = AggregatorConfig::default();
    AggregatorConfig {
        max_size: args.max_size.unwrap_or(defaults.max_size),
        max_count: args.max_count.unwrap_or(defaults.max_count),
        max_record_size: args.max_record_size.unwrap_or(defaults.max_record_size),
    }
}

/// Runs `kpl encode`, streaming: each Kinesis record is written as soon as KPL would emit
/// it, and whatever is still waiting at the end of the input is flushed.
pub fn run(args: &EncodeArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), Stop> {
    let mut aggregator =
        Aggregator::new(config(args)).map_err(|e| CliError::input(format!("bad limits: {e}")))?;
    let mut lines = NumberedLines::open(args.file.as_deref(), stdin)?;
    while let Some((line_number, content)) = lines.next_line()? {
        let Some(user) = parse_user_record_line(content, line_number)? else {
            continue;
        };
        let mut record = InputRecord::new(&user.partition_key, &user.data);
        if let Some(ehk) = user.explicit_hash_key.as_deref() {
            record = record.with_explicit_hash_key(ehk);
        }
        let emitted = aggregator
            .add(record)
            .map_err(|e| CliError::input(format!("line {line_number}: {e}")))?;
        if let Some(kinesis) = emitted {
            write_line(out, &EncodedLine::from(&kinesis))?;
        }
    }
    for kinesis in aggregator.drain() {
        write_line(out, &EncodedLine::from(&kinesis))?;
    }
    out.flush()?;
    Ok(())
}
