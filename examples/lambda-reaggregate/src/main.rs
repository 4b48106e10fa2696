//! The Lambda function: deaggregates each Kinesis batch, transforms every user record and
//! re-aggregates the results into the destination stream, answering with partial batch
//! failures. Built for Lambda with `cargo lambda build --release` (the `bootstrap` of a
//! `provided.al2023` function); settings come from environment variables
//! ([`FunctionConfig`]: `DEST_STREAM`, `TRANSFORM`, `KPL_CONFIG`, `KINESIS_ENDPOINT`,
//! `ANSWER_MARGIN_MS`).
//!
//! Under Lambda (`AWS_LAMBDA_RUNTIME_API` set, no arguments) it runs `lambda_runtime`: the
//! sink is built once per execution environment, and every invocation goes through
//! [`handle_until`] with the invocation's deadline less `ANSWER_MARGIN_MS`; the sink is
//! flushed before each answer.
//!
//! Given an event file (or `-` for standard input) it handles that one event without
//! Lambda and prints the answer Lambda would get:
//!
//! ```sh
//! lambda-reaggregate [--stream DEST] [--endpoint URL] EVENT.json
//! ```
//! `--stream` overrides `DEST_STREAM`, `--endpoint` `KINESIS_ENDPOINT`.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kpl_kinesis::lambda::{KinesisEvent, KinesisEventResponse};
use kpl_kinesis::sink::Sink;
use lambda_reaggregate::{handle, handle_until, FunctionConfig, Transform};
use lambda_runtime::{service_fn, LambdaEvent};

const USAGE: &str =
    "usage: lambda-reaggregate                 (under Lambda: AWS_LAMBDA_RUNTIME_API set)
       lambda-reaggregate [--stream DEST] [--endpoint URL] EVENT.json|-
  --stream    destination stream name or ARN (default $DEST_STREAM)
  --endpoint  Kinesis endpoint URL (default $KINESIS_ENDPOINT, else AWS)
  EVENT.json  a Lambda KinesisEvent to handle once ('-': standard input)
Other settings: TRANSFORM (envelope|identity), KPL_CONFIG (sink settings, JSON), ANSWER_MARGIN_MS.";

/// How long the cold start waits for the destination's shard map: ListShards answers in
/// milliseconds, and Lambda's init phase allows 10 s (the emulator only the function's
/// timeout).
const SHARD_MAP_WAIT: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.is_empty() {
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
            eprintln!("error: not under Lambda (AWS_LAMBDA_RUNTIME_API is not set) and no event file given\n{USAGE}");
            return ExitCode::from(2);
        }
        run_function().await
    } else {
        match parse_args(args) {
            Ok(once) => run_once(once).await,
            Err(e) => {
                if !e.is_empty() {
                    eprintln!("error: {e}");
                }
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Lambda function proper: one sink per execution environment, one [`handle_until`]
/// per invocation.
async fn run_function() -> Result<(), lambda_runtime::Error> {
    // The sink's own log lines (retries, shard map refreshes), formatted as the function's
    // log format says (AWS_LAMBDA_LOG_FORMAT, AWS_LAMBDA_LOG_LEVEL).
    lambda_runtime::tracing::init_default_subscriber();
    // A bad setting fails the init phase with its message (Runtime.ExitError).
    let config = FunctionConfig::from_env()?;
    let sink = Arc::new(config.build_sink(SHARD_MAP_WAIT).await?);
    let transform = config.transform;
    let margin = config.answer_margin;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| {
        let sink = sink.clone();
        async move {
            let deadline = invocation_deadline(event.context.deadline(), margin);
            Ok::<KinesisEventResponse, lambda_runtime::Error>(
                handle_until(event.payload, &sink, |r| transform.apply(r), deadline).await,
            )
        }
    }))
    .await
}

/// The instant, on tokio's clock, `margin` before the invocation's deadline (wall clock).
fn invocation_deadline(deadline: SystemTime, margin: Duration) -> tokio::time::Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + left.saturating_sub(margin)
}

struct Once {
    stream: Option<String>,
    endpoint: Option<String>,
    event: Option<String>,
}

fn parse_args(args: Vec<String>) -> Result<Once, String> {
    let mut once = Once {
        stream: None,
        endpoint: None,
        event: None,
    };
    let mut event_given = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stream" => once.stream = Some(args.next().ok_or("--stream needs a value")?),
            "--endpoint" => once.endpoint = Some(args.next().ok_or("--endpoint needs a value")?),
            "-h" | "--help" => return Err(String::new()),
            "-" => {
                once.event = None;
                event_given = true;
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => {
                once.event = Some(other.to_owned());
                event_given = true;
            }
        }
    }
    if !event_given {
        return Err("no event file: give EVENT.json, or - for standard input".into());
    }
    Ok(once)
}

/// Handles one event file without Lambda (waiting for every outcome, no deadline) and
/// prints the answer.
async fn run_once(once: Once) -> Result<(), lambda_runtime::Error> {
    let config = FunctionConfig::from_vars(|name| match name {
        "DEST_STREAM" if once.stream.is_some() => once.stream.clone(),
        "KINESIS_ENDPOINT" if once.endpoint.is_some() => once.endpoint.clone(),
        _ => std::env::var(name).ok(),
    })?;
    let bytes = match &once.event {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            bytes
        }
    };
    let event: KinesisEvent =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a Lambda KinesisEvent: {e}"))?;
    let sink: Sink = config.build_sink(Duration::from_secs(10)).await?;
    let transform: Transform = config.transform;
    let response = handle(event, &sink, |r| transform.apply(r)).await;
    println!("{}", serde_json::to_string(&response)?);
    sink.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
