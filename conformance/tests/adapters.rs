//! The adapter runner: kpl-codec behind the protocol passes every check, and a
//! misbehaving adapter's crashes, hangs and garbage are results, never a hang.

use std::time::Duration;

use kpl_conformance::adapter::{AdapterProcess, Answer};
use kpl_conformance::peer;
use serde_json::json;

#[test]
fn kpl_codec_behind_the_protocol_passes_every_check() {
    let vectors = kpl_vectors::load_all().unwrap();
    let mut adapter =
        AdapterProcess::new(env!("CARGO_BIN_EXE_kpl-adapter"), Duration::from_secs(20));
    let hello = peer::hello(&mut adapter).unwrap();
    assert_eq!(hello.name, "kpl-codec");
    assert_eq!(hello.policies, ["kcl", "strict"]);
    let outcomes = peer::run(&mut adapter, &hello, "kpl", &vectors);
    // Every decode vector under both policies, every encode vector once per column that
    // applies: far more than the corpus has vectors.
    assert!(outcomes.len() > vectors.len(), "{}", outcomes.len());
    let failures: Vec<_> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn crashes_timeouts_and_garbage_are_results() {
    // Answers hello, then garbage, then exits; restarted, it answers hello again and then
    // hangs without answering.
    let script = r#"read l; echo '{"ok": true, "name": "x"}'; read l; echo 'not json'; read l; echo '{"no_ok": 1}'; read l; exit 3"#;
    let mut adapter = AdapterProcess::new(script, Duration::from_millis(500));
    let hello = json!({"op": "hello"});
    assert!(matches!(adapter.request(&hello), Answer::Ok(_)));
    assert!(matches!(adapter.request(&hello), Answer::Malformed(ref l) if l == "not json"));
    // A malformed answer restarts the process: the next request is its first again.
    assert!(matches!(adapter.request(&hello), Answer::Ok(_)));

    // A hung adapter times out, and stopping it stops what it started too (the inner
    // shell writes the marker only if it survives its parent).
    let marker = std::env::temp_dir().join(format!("kpl-adapter-hang-{}", std::process::id()));
    let hang = format!("read l; sh -c 'sleep 2; touch {}'", marker.display());
    let mut adapter = AdapterProcess::new(&hang, Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(adapter.request(&hello), Answer::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the hung adapter's child outlived it");

    let crash = "read l; exit 3";
    let mut adapter = AdapterProcess::new(crash, Duration::from_secs(5));
    assert!(matches!(adapter.request(&hello), Answer::Crash(ref m) if m.contains("exit")));

    let refuse = r#"read l; echo '{"ok": false, "error": "no such op"}'"#;
    let mut adapter = AdapterProcess::new(refuse, Duration::from_secs(5));
    assert_eq!(
        adapter.request(&hello),
        Answer::Refused("no such op".into())
    );
}
