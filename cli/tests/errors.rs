//! What a person sees when `kpl put` and `kpl tail` cannot reach the stream: the one-line
//! messages, as snapshots of the real runs (a closed port on 127.0.0.1, kinesis-mock),
//! each within seconds and with exit code 2. Runs inside a private network namespace, so
//! that nothing listens on the closed port and kinesis-mock is the only server.

#[path = "../../kinesis/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

/// Nothing listens here inside the namespace (discard).
const CLOSED: &str = "http://127.0.0.1:9";

/// The most a failing check may take (the point is seconds, not the record TTL).
const FAST: Duration = Duration::from_secs(8);

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test("put_closed_port", put_closed_port),
        Trial::test("put_closed_port_verbose", put_closed_port_verbose),
        Trial::test("tail_closed_port", tail_closed_port),
        Trial::test("put_missing_stream", put_missing_stream),
        Trial::test("tail_missing_stream", tail_missing_stream),
        Trial::test("put_stream_in_another_region", put_other_region),
        Trial::test("put_without_credentials", put_without_credentials),
        Trial::test("put_to_a_server_that_is_not_kinesis", put_not_kinesis),
        Trial::test("put_access_denied", put_access_denied),
        Trial::test("put_throttled", put_throttled),
        Trial::test("put_unrecognized_credentials", put_unrecognized_credentials),
        Trial::test("sink_failure_closed_port", sink_failure_closed_port),
        Trial::test("sink_failure_missing_stream", sink_failure_missing_stream),
        Trial::test("source_error_missing_stream", source_error_missing_stream),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

/// `kpl` with test credentials and region, no profile, no instance metadata.
fn kpl(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kpl"));
    command
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/kpl-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/kpl-test-credentials",
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KINESIS");
    command
}

/// Runs it with one record on standard input; checks exit code 2, nothing on standard
/// output, one line on standard error, all within [`FAST`]; returns that line.
fn fails_fast(mut command: Command) -> Result<String, Failed> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"PartitionKey":"k","Data":"aGk="}"#)?;
    let out: Output = child.wait_with_output()?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() != Some(2) {
        return Err(format!("exit {:?}, stderr {stderr:?}", out.status.code()).into());
    }
    if took > FAST {
        return Err(format!("took {took:?} (more than {FAST:?}): {stderr:?}").into());
    }
    if !out.stdout.is_empty() {
        return Err(format!("stdout: {:?}", String::from_utf8_lossy(&out.stdout)).into());
    }
    if stderr.lines().count() != 1 {
        return Err(format!("not one line: {stderr:?}").into());
    }
    Ok(stderr.trim_end().to_owned())
}

fn put(stream: &str, endpoint: &str, extra: &[&str]) -> Command {
    let mut args = vec!["put", "--stream", stream, "--endpoint", endpoint];
    args.extend_from_slice(extra);
    kpl(&args)
}

fn tail(stream: &str, endpoint: &str) -> Command {
    kpl(&["tail", "--stream", stream, "--endpoint", endpoint])
}

fn put_closed_port() -> Result<(), Failed> {
    let line = fails_fast(put("s", CLOSED, &["--region", "us-east-1"]))?;
    insta::assert_snapshot!("put_closed_port", line);
    Ok(())
}

fn put_closed_port_verbose() -> Result<(), Failed> {
    let line = fails_fast(put("s", CLOSED, &["-v"]))?;
    insta::assert_snapshot!("put_closed_port_verbose", line);
    Ok(())
}

fn tail_closed_port() -> Result<(), Failed> {
    let line = fails_fast(tail("s", CLOSED))?;
    insta::assert_snapshot!("tail_closed_port", line);
    Ok(())
}

fn put_missing_stream() -> Result<(), Failed> {
    let line = fails_fast(put("no-such-stream", support::ENDPOINT, &[]))?;
    insta::assert_snapshot!("put_missing_stream", line);
    Ok(())
}

fn tail_missing_stream() -> Result<(), Failed> {
    let line = fails_fast(tail("no-such-stream", support::ENDPOINT))?;
    insta::assert_snapshot!("tail_missing_stream", line);
    Ok(())
}

fn put_other_region() -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "errors-east", 1).await;
    });
    let line = fails_fast(put(
        "errors-east",
        support::ENDPOINT,
        &["--region", "us-west-2"],
    ))?;
    insta::assert_snapshot!("put_stream_in_another_region", line);
    Ok(())
}

fn put_without_credentials() -> Result<(), Failed> {
    let mut command = put("s", support::ENDPOINT, &[]);
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let line = fails_fast(command)?;
    insta::assert_snapshot!("put_without_credentials", line);
    Ok(())
}

/// A plain TCP server that closes every connection once the request's head has come,
/// without an answer. (Closing at once instead ends the request in one of several ways,
/// depending on timing; `explain` reads them all alike, its unit tests say so.)
fn put_not_kinesis() -> Result<(), Failed> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                continue;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match connection.read(&mut buf) {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            drop(connection);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let line = fails_fast(put("s", &endpoint, &[]))?;
    insta::assert_snapshot!(
        "put_to_a_server_that_is_not_kinesis",
        line.replace(&port.to_string(), "PORT")
    );
    Ok(())
}

/// The test credentials and region for the library's drivers (the namespace's process
/// environment is this test's).
fn sdk_config() -> aws_config::SdkConfig {
    support::sdk_config()
}

/// What the sink's [`Failure`](kpl_kinesis::sink::Failure) says (the line the Fluent Bit
/// output logs), with the attempt count, which depends on timing, blanked.
fn sink_failure(stream: &str, endpoint: &str) -> Result<(String, String), Failed> {
    use kpl_kinesis::sink::{Config, Outcome, Sink, UserRecord};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = Config {
            kinesis_endpoint: endpoint.to_owned(),
            // Short, so that the check takes seconds; long enough that at least one
            // attempt ends before it, on a loaded machine too (the line names its error).
            record_ttl: 4000,
            ..Config::default()
        };
        let sink = Sink::builder()
            .stream_name(stream)
            .config(config)
            .sdk_config(sdk_config())
            .build()
            .await?;
        let pending = sink.put(UserRecord::new("k", b"hi".to_vec())).await?;
        sink.flush().await;
        let failure = match pending.await {
            Outcome::Failure(f) => f,
            other => return Err(format!("not a failure: {other:?}").into()),
        };
        sink.shutdown(Duration::from_secs(5)).await;
        let blank = |text: String| match text.rfind(" (after ") {
            Some(i) => format!("{} (after N attempts)", &text[..i]),
            None => text,
        };
        Ok((blank(failure.to_string()), blank(format!("{failure:#}"))))
    })
}

fn sink_failure_closed_port() -> Result<(), Failed> {
    let (line, raw) = sink_failure("s", CLOSED)?;
    insta::assert_snapshot!("sink_failure_closed_port", line);
    // The raw detail stays available with `{:#}`.
    if !raw.contains("Dispatch: dispatch failure") || !raw.contains("os error 111") {
        return Err(format!("raw detail: {raw}").into());
    }
    Ok(())
}

fn sink_failure_missing_stream() -> Result<(), Failed> {
    let (line, _) = sink_failure("no-such-stream", support::ENDPOINT)?;
    insta::assert_snapshot!("sink_failure_missing_stream", line);
    Ok(())
}

/// What the source's error says (the line `kpl tail` and the Fluent Bit input print),
/// without a check first.
fn source_error_missing_stream() -> Result<(), Failed> {
    use kpl_kinesis::source::Source;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let line = rt.block_on(async {
        let mut source = Source::builder()
            .stream_name("no-such-stream")
            .endpoint_url(support::ENDPOINT)
            .sdk_config(sdk_config())
            .build()
            .await?;
        match source.next().await {
            Some(Err(e)) => Ok::<_, Failed>(e.to_string()),
            other => Err(format!("not an error: {other:?}").into()),
        }
    })?;
    if started.elapsed() > FAST {
        return Err(format!("took {:?}", started.elapsed()).into());
    }
    insta::assert_snapshot!("source_error_missing_stream", line);
    Ok(())
}

/// A server that answers every request with this Kinesis error (status 400, the JSON body
/// AWS sends), for the errors kinesis-mock cannot produce; returns its endpoint.
fn kinesis_error_server(code: &'static str, message: &'static str) -> Result<String, Failed> {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                continue;
            };
            let mut reader = BufReader::new(connection.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = serde_json::json!({ "__type": code, "message": message }).to_string();
            let _ = write!(
                connection,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 x-amzn-ErrorType: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Ok(format!("http://127.0.0.1:{port}"))
}

fn put_access_denied() -> Result<(), Failed> {
    let endpoint = kinesis_error_server(
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: \
         kinesis:DescribeStreamSummary on resource: arn:aws:kinesis:us-east-1:123456789012:stream/s \
         because no identity-based policy allows the kinesis:DescribeStreamSummary action",
    )?;
    let line = fails_fast(put("s", &endpoint, &[]))?;
    insta::assert_snapshot!("put_access_denied", line);
    Ok(())
}

fn put_throttled() -> Result<(), Failed> {
    let endpoint = kinesis_error_server(
        "LimitExceededException",
        "Rate exceeded for stream s under account 123456789012.",
    )?;
    let line = fails_fast(put("s", &endpoint, &[]))?;
    insta::assert_snapshot!("put_throttled", line);
    Ok(())
}

fn put_unrecognized_credentials() -> Result<(), Failed> {
    let endpoint = kinesis_error_server(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )?;
    let line = fails_fast(put("s", &endpoint, &[]))?;
    insta::assert_snapshot!("put_unrecognized_credentials", line);
    Ok(())
}
