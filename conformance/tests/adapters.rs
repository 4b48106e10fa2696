//! The adapter runner: kpl-codec behind the protocol passes every check, and a
//! misbehaving adapter's crashes, hangs and garbage are results, never a hang.
//!
//! Nothing here depends on the machine's speed or load: where an answer (or an exit) is
//! sure to come, the timeout is far longer than it could ever take; the one request meant
//! to time out goes to an adapter that never answers it; and what stopping a hung adapter
//! must end is waited for, within a generous bound, rather than given a fixed time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kpl_conformance::adapter::{AdapterProcess, Answer};
use kpl_conformance::peer;
use serde_json::json;

/// The timeout where an answer or an exit is sure to come: a working runner never
/// reaches it, however loaded the machine is.
const NEVER_REACHED: Duration = Duration::from_secs(60);

#[test]
fn kpl_codec_behind_the_protocol_passes_every_check() {
    let vectors = kpl_vectors::load_all().unwrap();
    let mut adapter = AdapterProcess::new(env!("CARGO_BIN_EXE_kpl-adapter"), NEVER_REACHED);
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
    let mut adapter = AdapterProcess::new(script, NEVER_REACHED);
    let hello = json!({"op": "hello"});
    assert!(matches!(adapter.request(&hello), Answer::Ok(_)));
    assert!(matches!(adapter.request(&hello), Answer::Malformed(ref l) if l == "not json"));
    // A malformed answer restarts the process: the next request is its first again.
    assert!(matches!(adapter.request(&hello), Answer::Ok(_)));

    // A hung adapter times out, and stopping it stops what it started too. This one starts
    // an inner shell that writes its PID and would touch the marker ten minutes later,
    // answers the first request once that PID is written, and never answers the second.
    let dir = std::env::temp_dir().join(format!("kpl-adapter-hang-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (pid_file, marker) = (dir.join("inner.pid"), dir.join("marker"));
    let hang = format!(
        "read l; sh -c 'echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; sleep 600; touch {marker}' & \
         while [ ! -s {pid} ]; do sleep 0.01; done; echo '{{\"ok\": true}}'; read l; sleep 600",
        pid = pid_file.display(),
        marker = marker.display(),
    );
    let mut adapter = AdapterProcess::new(&hang, NEVER_REACHED);
    assert!(matches!(adapter.request(&hello), Answer::Ok(_)));
    let inner = Process::from_pid_file(&pid_file);
    adapter.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(adapter.request(&hello), Answer::Timeout);
    // By construction: nothing but the timeout ends a request that is never answered, and
    // not before it is over.
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Timing out stopped the adapter's whole process group: the inner shell ends (waited
    // for, within a bound no working kill comes near), and once it is gone nothing can
    // touch the marker any more.
    let deadline = Instant::now() + Duration::from_secs(20);
    while inner.alive() {
        if Instant::now() >= deadline {
            inner.kill_group();
            panic!("the hung adapter's child outlived it by 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!marker.exists(), "the hung adapter's child outlived it");
    let _ = std::fs::remove_dir_all(&dir);

    let crash = "read l; exit 3";
    let mut adapter = AdapterProcess::new(crash, NEVER_REACHED);
    assert!(matches!(adapter.request(&hello), Answer::Crash(ref m) if m.contains("exit")));

    let refuse = r#"read l; echo '{"ok": false, "error": "no such op"}'"#;
    let mut adapter = AdapterProcess::new(refuse, NEVER_REACHED);
    assert_eq!(
        adapter.request(&hello),
        Answer::Refused("no such op".into())
    );
}

/// A running process, told apart from a later one that reuses its PID by its start time.
struct Process {
    pid: u32,
    /// Its process group: the adapter's.
    group: u32,
    start_time: String,
}

impl Process {
    /// The process whose PID `file` holds, which must be running.
    fn from_pid_file(file: &Path) -> Self {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let pid: u32 = text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} in {}: {e}", file.display()));
        let stat = proc_stat(pid).unwrap_or_else(|| panic!("no process {pid}"));
        assert!(
            !is_dead(stat.state),
            "process {pid} is dead ({})",
            stat.state
        );
        Process {
            pid,
            group: stat.group,
            start_time: stat.start_time,
        }
    }

    /// Whether it still runs. A zombie (dead, not yet reaped) does not, nor does a new
    /// process that got the same PID.
    fn alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && !is_dead(s.state))
    }

    /// Kills what is left of its process group (after a failed check), so that nothing
    /// of the test outlives it.
    fn kill_group(&self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.group)])
            .status();
    }
}

fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// What `/proc/PID/stat` tells of a process.
struct Stat {
    /// Field 3: `Z` for a zombie, `X` once dead.
    state: char,
    /// Field 5.
    group: u32,
    /// Field 22, in clock ticks since boot.
    start_time: String,
}

fn proc_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold anything: count the fields
    // after the last ')'; field 3 is the first of them.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        state: field(3)?.chars().next()?,
        group: field(5)?.parse().ok()?,
        start_time: field(22)?.to_owned(),
    })
}
