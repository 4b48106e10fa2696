//! Puts every line of standard input into a stream through the sink, then prints each
//! failure and the counters.
//!
//! ```sh
//! bash ci/kinesis-mock install   # then start it as /work/shared/docs/local-kinesis.md says, or use AWS
//! seq 1 100000 | cargo run --release -p kpl-kinesis --example put_lines -- logs http://127.0.0.1:4568
//! ```
//! Arguments: the stream name, and optionally an endpoint URL (AWS otherwise). Credentials
//! and region come from the standard chain (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, profiles).

use std::io::BufRead;
use std::time::Duration;

use kpl_kinesis::sink::{Config, Outcome, Sink, UserRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let stream = args
        .next()
        .ok_or("usage: put_lines STREAM [ENDPOINT_URL] < lines")?;
    let config = Config {
        kinesis_endpoint: args.next().unwrap_or_default(),
        ..Config::default()
    };
    let sink = Sink::builder()
        .stream_name(stream)
        .config(config)
        .build()
        .await?;
    sink.wait_for_shard_map(Duration::from_secs(10)).await;

    let mut pending = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let record = UserRecord::new(format!("line-{}", n % 1000), line?.into_bytes());
        // Waits while the sink's buffer is full (backpressure).
        pending.push((n + 1, sink.put(record).await?));
    }
    sink.flush().await;
    for (line, outcome) in pending {
        if let Outcome::Failure(failure) = outcome.await {
            eprintln!("line {line}: {failure}");
        }
    }
    let stats = sink.stats();
    println!(
        "{} user records stored in {} Kinesis records ({:.1} per record), {} failed, {} PutRecords calls",
        stats.user_records_stored,
        stats.kinesis_records_stored,
        stats.aggregation_ratio(),
        stats.user_records_failed,
        stats.put_records_calls
    );
    sink.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
