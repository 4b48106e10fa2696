//! Runs [`handle`] once, without the Lambda runtime: reads a Lambda `KinesisEvent` JSON
//! from a file (or standard input), re-aggregates its user records, wrapped by
//! [`envelope`], into the destination stream, and prints the answer Lambda would get
//! (`{"batchItemFailures":[...]}`) on standard output.
//!
//! ```sh
//! lambda-reaggregate --stream DEST [--endpoint URL] [EVENT.json]   # or `-`/nothing: stdin
//! ```
//! `--stream` defaults to `$DEST_STREAM`, `--endpoint` to `$KINESIS_ENDPOINT` (AWS when
//! unset). Credentials and region come from the standard AWS chain.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use kpl_kinesis::lambda::KinesisEvent;
use kpl_kinesis::sink::{Config, Sink};
use lambda_reaggregate::{envelope, handle};

const USAGE: &str = "usage: lambda-reaggregate [--stream DEST] [--endpoint URL] [EVENT.json | -]
  --stream    destination stream (default $DEST_STREAM)
  --endpoint  Kinesis endpoint URL (default $KINESIS_ENDPOINT, else AWS)
  EVENT.json  a Lambda KinesisEvent (default: standard input)";

struct Args {
    stream: String,
    endpoint: String,
    event: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut stream = std::env::var("DEST_STREAM").unwrap_or_default();
    let mut endpoint = std::env::var("KINESIS_ENDPOINT").unwrap_or_default();
    let mut event = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stream" => stream = args.next().ok_or("--stream needs a value")?,
            "--endpoint" => endpoint = args.next().ok_or("--endpoint needs a value")?,
            "-h" | "--help" => return Err(String::new()),
            "-" => event = None,
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => event = Some(other.to_owned()),
        }
    }
    if stream.is_empty() {
        return Err("no destination stream: give --stream or set DEST_STREAM".into());
    }
    Ok(Args {
        stream,
        endpoint,
        event,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = match &args.event {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            bytes
        }
    };
    let event: KinesisEvent =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a Lambda KinesisEvent: {e}"))?;
    let config = Config {
        kinesis_endpoint: args.endpoint,
        ..Config::default()
    };
    let sink = Sink::builder()
        .stream_name(args.stream)
        .config(config)
        .build()
        .await?;
    // Aggregates are built per destination shard only once the sink knows the shards.
    sink.wait_for_shard_map(Duration::from_secs(10)).await;
    let response = handle(event, &sink, envelope).await;
    println!("{}", serde_json::to_string(&response)?);
    sink.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
