//! `kpl put` and `kpl tail` end to end against kinesis-mock (started by the shared support
//! module inside a private network namespace), read back with GetRecords and kpl-codec's
//! KCL policy.

#[path = "../../kinesis/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test("put_ndjson_records_are_all_read_back_under_kcl", put_ndjson),
        Trial::test(
            "put_lines_keyed_by_field_lists_the_line_without_it",
            put_lines,
        ),
        Trial::test(
            "put_from_a_slow_pipe_stores_each_line_before_the_next_comes",
            put_slow_pipe,
        ),
        Trial::test(
            "tail_prints_every_record_once_with_shard_and_sequence",
            tail_all,
        ),
        Trial::test(
            "tail_follow_prints_new_records_and_stops_on_ctrl_c",
            tail_follow,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn kpl(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kpl"));
    command
        .args(args)
        .args(["--endpoint", support::ENDPOINT])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    command
}

/// A `kpl put --config` file with the shared tests' patient sink settings (see
/// `support::patient_config`): on a busy machine kinesis-mock can take longer than KPL's
/// 6 s `RequestTimeout`, and a timed-out request stored anyway would be stored twice. One
/// file per stream: the tests run in parallel.
fn patient_config_file(stream: &str) -> std::path::PathBuf {
    let name = format!("kpl-put-test-{}-{stream}.json", std::process::id());
    let path = std::env::temp_dir().join(name);
    let json = serde_json::json!({
        "RequestTimeout": support::PATIENT_REQUEST_TIMEOUT,
        "RecordTtl": support::PATIENT_RECORD_TTL,
    });
    std::fs::write(&path, json.to_string()).expect("write the sink settings");
    path
}

fn kpl_put(stream: &str, extra: &[&str], input: &[u8]) -> Output {
    let config = patient_config_file(stream);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpl"))
        .args(["put", "--stream", stream, "--endpoint", support::ENDPOINT])
        .arg("--config")
        .arg(&config)
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kpl");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("kpl put ends");
    writer.join().expect("writer").expect("write stdin");
    let _ = std::fs::remove_file(&config);
    output
}

fn put_ndjson() -> Result<(), Failed> {
    let rt = runtime();
    let admin = rt.block_on(async { support::admin() });
    rt.block_on(support::create_stream(&admin, "cli-put", 2));
    let mut input = String::new();
    let mut expected = Vec::new();
    for i in 0..2000u32 {
        let key = format!("k{}", i % 37);
        let data = format!("line {i}").into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        input.push_str(&format!(
            "{{\"PartitionKey\":\"{key}\",\"Data\":\"{b64}\"}}\n"
        ));
        expected.push((key, data));
    }
    let out = kpl_put("cli-put", &[], input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("user records:     2000 (2000 stored, 0 failed)"),
        "{stdout}"
    );
    let stored = rt.block_on(support::read_all(&admin, "cli-put"));
    let kinesis_line = format!("kinesis records:  {} ", stored.len());
    assert!(stdout.contains(&kinesis_line), "{stdout}");
    assert!(stored.len() < 2000, "nothing was aggregated");
    let (delivered, dropped) = support::kcl_view(&stored);
    assert_eq!(dropped, 0);
    assert_eq!(support::counts(delivered), support::counts(expected));
    Ok(())
}

fn put_lines() -> Result<(), Failed> {
    let rt = runtime();
    let admin = rt.block_on(async { support::admin() });
    rt.block_on(support::create_stream(&admin, "cli-lines", 1));
    let input = "{\"user\":\"ann\",\"msg\":1}\n{\"user\":\"bob\",\"msg\":2}\n{\"msg\":3}\nnot json\n{\"user\":\"ann\",\"msg\":5}\n";
    let out = kpl_put(
        "cli-lines",
        &["--lines", "--partition-key-field", "user"],
        input.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("user records:     5 (3 stored, 2 failed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  line 3: no non-empty string field \"user\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("  line 4: no non-empty string field \"user\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("kpl: 2 of 5 user records failed"),
        "{stderr}"
    );
    let stored = rt.block_on(support::read_all(&admin, "cli-lines"));
    let (delivered, _) = support::kcl_view(&stored);
    let line = |key: &str, text: &str| (key.to_owned(), text.as_bytes().to_vec());
    assert_eq!(
        support::counts(delivered),
        support::counts([
            line("ann", "{\"user\":\"ann\",\"msg\":1}"),
            line("bob", "{\"user\":\"bob\",\"msg\":2}"),
            line("ann", "{\"user\":\"ann\",\"msg\":5}"),
        ])
    );
    Ok(())
}

/// `kpl put` reading a pipe whose writer waits for each line to be stored before writing
/// the next (as `tail -f log | kpl put` would see): a line must go out without waiting for
/// more input, whatever the put path groups.
fn put_slow_pipe() -> Result<(), Failed> {
    const STREAM: &str = "cli-slow-pipe";
    let rt = runtime();
    let admin = rt.block_on(async { support::admin() });
    rt.block_on(support::create_stream(&admin, STREAM, 1));
    let config = patient_config_file(STREAM);
    let mut child = kpl(&["put", "--stream", STREAM, "--lines", "--quiet"])
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kpl");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut result: Result<(), Failed> = Ok(());
    for n in 1..=3usize {
        writeln!(stdin, "slow line {n}").expect("write a line");
        stdin.flush().expect("flush the pipe");
        // Bounded: a put that held the line back for more input never stores it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let stored = loop {
            let stored = rt.block_on(support::read_all(&admin, STREAM));
            let (delivered, _) = support::kcl_view(&stored);
            if delivered.len() >= n || std::time::Instant::now() > deadline {
                break delivered;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        if stored.len() != n {
            result = Err(format!(
                "{} records stored after line {n} was written: {stored:?}",
                stored.len()
            )
            .into());
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().expect("kpl put ends");
    let _ = std::fs::remove_file(&config);
    result?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = rt.block_on(support::read_all(&admin, STREAM));
    let (delivered, _) = support::kcl_view(&stored);
    let data: Vec<Vec<u8>> = delivered.into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        data,
        (1..=3)
            .map(|n| format!("slow line {n}").into_bytes())
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn ndjson_input(run: &str, n: u32, keys: u32) -> (String, Vec<(String, Vec<u8>)>) {
    let mut input = String::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let key = format!("{run}{}", i % keys);
        let data = format!("{run} line {i}").into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        input.push_str(&format!(
            "{{\"PartitionKey\":\"{key}\",\"Data\":\"{b64}\"}}\n"
        ));
        expected.push((key, data));
    }
    (input, expected)
}

/// (partition key, data, shard id, sequence number) of each line.
fn tail_lines(stdout: &[u8]) -> Vec<(String, Vec<u8>, String, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("NDJSON");
            let text = |f: &str| {
                v[f].as_str()
                    .unwrap_or_else(|| panic!("{f} in {line}"))
                    .to_owned()
            };
            let data = base64::engine::general_purpose::STANDARD
                .decode(text("Data"))
                .expect("base64");
            (
                text("PartitionKey"),
                data,
                text("ShardId"),
                text("SequenceNumber"),
            )
        })
        .collect()
}

fn tail_all() -> Result<(), Failed> {
    let rt = runtime();
    let admin = rt.block_on(async { support::admin() });
    rt.block_on(support::create_stream(&admin, "cli-tail", 3));
    let (input, expected) = ndjson_input("t", 1500, 29);
    assert_eq!(
        kpl_put("cli-tail", &[], input.as_bytes()).status.code(),
        Some(0)
    );
    let out = kpl(&["tail", "--stream", "cli-tail"]).output()?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = tail_lines(&out.stdout);
    assert_eq!(
        support::counts(lines.iter().map(|(k, d, _, _)| (k.clone(), d.clone()))),
        support::counts(expected)
    );
    let shards: std::collections::BTreeSet<&str> =
        lines.iter().map(|(_, _, s, _)| s.as_str()).collect();
    assert_eq!(shards.len(), 3, "{shards:?}");
    assert!(lines
        .iter()
        .all(|(_, _, _, seq)| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit())));
    // --from latest: nothing new, so nothing printed.
    let latest = kpl(&["tail", "--stream", "cli-tail", "--from", "latest"]).output()?;
    assert_eq!(latest.status.code(), Some(0));
    assert!(
        latest.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&latest.stdout)
    );
    // --from SEQ: that record's shard from that record on.
    let (_, _, shard, seq) = &lines[lines.len() / 2];
    let from = kpl(&["tail", "--stream", "cli-tail", "--from", seq]).output()?;
    assert_eq!(
        from.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from.stderr)
    );
    let from_lines = tail_lines(&from.stdout);
    assert!(!from_lines.is_empty());
    assert!(from_lines.iter().all(|(_, _, s, _)| s == shard));
    assert_eq!(&from_lines[0].3, seq);
    Ok(())
}

fn tail_follow() -> Result<(), Failed> {
    use std::io::{BufRead, BufReader};
    let rt = runtime();
    let admin = rt.block_on(async { support::admin() });
    rt.block_on(support::create_stream(&admin, "cli-follow", 1));
    let mut child = kpl(&["tail", "--stream", "cli-follow", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("stdout")?;
    let (input, expected) = ndjson_input("f", 50, 5);
    assert_eq!(
        kpl_put("cli-follow", &[], input.as_bytes()).status.code(),
        Some(0)
    );
    // Lines come through a thread, so that waiting for them is bounded (generously: a
    // minute for 50 records) even if `kpl tail` stops printing without exiting.
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < expected.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.extend(tail_lines(line?.as_bytes())),
            // Ended, or nothing more within the minute: the comparison below says what
            // is missing.
            Err(_) => break,
        }
    }
    if seen.len() < expected.len() {
        // Failing: stop the follower first, so that it does not outlive the test.
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        support::counts(seen.iter().map(|(k, d, _, _)| (k.clone(), d.clone()))),
        support::counts(expected)
    );
    // Ctrl-C: a clean stop.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()?
        .success());
    let status = child.wait()?;
    assert_eq!(
        status.code(),
        Some(0),
        "kpl tail --follow after SIGINT: {status:?}"
    );
    Ok(())
}
