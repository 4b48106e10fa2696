//! `kpl put` end to end against kinesis-mock (started by the shared support module inside a
//! private network namespace), read back with GetRecords and kpl-codec's KCL policy.

#[path = "../../kinesis/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
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

fn kpl_put(stream: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpl"))
        .args(["put", "--stream", stream, "--endpoint", support::ENDPOINT])
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
    output
}

fn counts(
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> BTreeMap<(String, Vec<u8>), usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r).or_insert(0) += 1;
    }
    m
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
    assert_eq!(counts(delivered), counts(expected));
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
        counts(delivered),
        counts([
            line("ann", "{\"user\":\"ann\",\"msg\":1}"),
            line("bob", "{\"user\":\"bob\",\"msg\":2}"),
            line("ann", "{\"user\":\"ann\",\"msg\":5}"),
        ])
    );
    Ok(())
}
