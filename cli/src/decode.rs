//! `kpl decode`: Kinesis records in, NDJSON user records out.

use std::io::{Read, Write};

use kpl_codec::{deaggregate_batch, Options};

use crate::args::{DecodeArgs, PolicyArg};
use crate::error::{CliError, Stop};
use crate::input::read_kinesis_records;
use crate::output::{write_line, DecodedLine};

/// The deaggregation options the arguments ask for.
pub fn options(args: &DecodeArgs) -> Options {
    let mut options = match args.policy {
        PolicyArg::Kcl => Options::kcl(),
        PolicyArg::Strict => Options::strict(),
    };
    if let Some(range) = args.source.shard_range {
        options = options.with_shard_range(range);
    }
    if args.no_verify {
        options = options.without_md5_check();
    }
    options
}

/// Runs `kpl decode`. The whole input is deaggregated as one batch (its MD5s computed
/// side by side in SIMD lanes), then written in order, so under the strict policy the
/// user records of the records before a defective one are out when it fails.
pub fn run(args: &DecodeArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), Stop> {
    let records = read_kinesis_records(&args.source, stdin)?;
    let inputs: Vec<(&[u8], &[u8])> = records
        .iter()
        .map(|record| (&record.data[..], record.partition_key.as_bytes()))
        .collect();
    let decoded = deaggregate_batch(&inputs, &options(args));
    for (index, (record, users)) in records.iter().zip(decoded).enumerate() {
        let users = match users {
            Ok(users) => users,
            Err(defect) => {
                out.flush()?;
                return Err(Stop::Error(CliError::defect(format!(
                    "{}: strict: {} at byte {}: {defect}",
                    record.label(index),
                    defect.kind(),
                    defect.offset()
                ))));
            }
        };
        for user in users {
            write_line(
                out,
                &DecodedLine::new(&user, record.sequence_number.as_deref()),
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
