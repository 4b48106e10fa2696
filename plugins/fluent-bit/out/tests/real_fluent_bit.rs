//! `kpl_kinesis` inside the real Fluent Bit, end to end: Fluent Bit loads the plugin
//! (`target/<profile>/libkpl_fluent_bit_out.so`, built with this test) with `-e`, reads
//! lines through `stdin` or `tail`, and the plugin puts them into kinesis-mock; each stream
//! is then read back the way a KCL consumer reads it (KCL policy, each shard's hash-range
//! filter) and compared with what went in: every line exactly once.
//!
//! Fluent Bit comes from `$FLUENT_BIT`, else `../shared/tools/fluent-bit/bin/fluent-bit`
//! relative to the workspace root; without it every trial is reported as ignored, with the
//! reason. kinesis-mock is started by `support` inside a private network namespace
//! (`unshare -rn`), so all traffic stays on that namespace's loopback. The trials run one
//! at a time, in order: they share the server, and the last one pauses it.
//!
//! Each trial writes its files (configuration, input, Fluent Bit's log) into its own
//! temporary folder, removed when it passes (kept with `KPL_KEEP_TEST_FILES=1`); a failure
//! names the folder and ends with the tail of Fluent Bit's log.

#[path = "../../../../kinesis/tests/support/mod.rs"]
mod support;
#[path = "../../testing.rs"]
mod testing;

use testing::find_fluent_bit;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// The settings every trial gives the sink through `kpl_config`: kinesis-mock on two busy
/// cores can take seconds to answer a large PutRecords, and a request that timed out but
/// was stored anyway is sent again (at-least-once), which these exactly-once checks must
/// not see. Requests get a minute.
const KPL_CONFIG: &str = "RequestTimeout = 60000\n";

/// Where Fluent Bit, the plugin and kinesis-mock are.
#[derive(Clone)]
struct Host {
    fluent_bit: PathBuf,
    plugin: PathBuf,
    /// kinesis-mock's process id.
    mock_pid: i32,
}

fn main() {
    let mut args = Arguments::from_args();
    // One kinesis-mock for all trials, and the last one pauses it: one trial at a time.
    args.test_threads = Some(1);
    let found = find_fluent_bit();
    let server = match &found {
        Ok(_) => Some(support::enter_namespace_and_start()),
        Err(why) => {
            eprintln!("real_fluent_bit: every trial is skipped: {why}");
            None
        }
    };
    let host = found.map(|fluent_bit| Host {
        fluent_bit,
        plugin: testing::plugin_library("libkpl_fluent_bit_out.so"),
        mock_pid: server.as_ref().map_or(0, |s| s.pid() as i32),
    });
    let trials = vec![
        trial(
            &host,
            "stdin_100000_lines_partition_key_field_4_shards_exactly_once_aggregated",
            Duration::from_secs(150),
            stdin_hundred_thousand,
        ),
        trial(
            &host,
            "tail_growing_file_then_sigterm_exactly_once",
            Duration::from_secs(120),
            tail_growing_file,
        ),
        trial(
            &host,
            "two_instances_hot_reload_then_sigterm_with_records_buffered_lose_nothing",
            Duration::from_secs(180),
            reload_then_sigterm,
        ),
        // Last: it pauses the server the others use.
        trial(
            &host,
            "kinesis_paused_10s_flush_retries_then_every_line_exactly_once",
            Duration::from_secs(150),
            kinesis_paused,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

/// A trial: ignored with the reason when Fluent Bit is missing; otherwise the scenario on
/// its own runtime and folder, failed after `limit`, with Fluent Bit's log on failure.
fn trial<F, Fut>(
    host: &Result<Host, String>,
    name: &'static str,
    limit: Duration,
    scenario: F,
) -> Trial
where
    F: FnOnce(Scenario) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Failed>>,
{
    let host = host.clone();
    Trial::ignorable_test(name, move || {
        let host = match host {
            Ok(host) => host,
            Err(why) => return Ok(Completion::ignored_with(why)),
        };
        if !host.plugin.is_file() {
            return Err(format!(
                "the plugin is not at {}: build it with `cargo build -p kpl-fluent-bit-out`",
                host.plugin.display()
            )
            .into());
        }
        let dir =
            std::env::temp_dir().join(format!("kpl-fluent-bit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let s = Scenario {
            host,
            dir: dir.clone(),
            logs: logs.clone(),
        };
        match support::block_on(scenario(s), limit) {
            Ok(()) => {
                if std::env::var_os("KPL_KEEP_TEST_FILES").is_none() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Ok(Completion::Completed)
            }
            Err(e) => {
                let mut msg = format!(
                    "{}\n(files kept in {})",
                    e.message().unwrap_or("failed"),
                    dir.display()
                );
                for log in logs.lock().map(|l| l.clone()).unwrap_or_default() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    msg.push_str(&format!(
                        "\n--- last {} lines of Fluent Bit's log {} ---\n{}",
                        tail.len(),
                        log.display(),
                        tail.join("\n")
                    ));
                }
                Err(msg.into())
            }
        }
    })
}

/// What a scenario gets: the host, its folder, and where Fluent Bit logs go.
struct Scenario {
    host: Host,
    dir: PathBuf,
    logs: Arc<Mutex<Vec<PathBuf>>>,
}

impl Scenario {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, Failed> {
        let path = self.path(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// An `[OUTPUT]` section into `stream`, with [`KPL_CONFIG`] plus `kpl_extra` as its
    /// `kpl_config` and the `extra` properties.
    fn output(
        &self,
        stream: &str,
        tag: &str,
        extra: &[(&str, &str)],
        kpl_extra: &str,
    ) -> Result<String, Failed> {
        let kpl_config = self.write(
            &format!("kpl-{stream}.toml"),
            &format!("{KPL_CONFIG}{kpl_extra}"),
        )?;
        let mut s = format!(
            "[OUTPUT]\n    name kpl_kinesis\n    match {tag}\n    stream {stream}\n    region us-east-1\n    endpoint {}\n    kpl_config {}\n",
            support::ENDPOINT,
            kpl_config.display()
        );
        for (k, v) in extra {
            s.push_str(&format!("    {k} {v}\n"));
        }
        Ok(s)
    }

    /// Starts Fluent Bit with this configuration (classic format), its log in the folder.
    fn start(&self, config: &str, stdin: bool) -> Result<FluentBit, Failed> {
        let conf = self.write("fluent-bit.conf", config)?;
        let log = self.path("fluent-bit.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        if let Ok(mut logs) = self.logs.lock() {
            logs.push(log.clone());
        }
        let mut child = Command::new(&self.host.fluent_bit)
            .arg("-e")
            .arg(&self.host.plugin)
            .arg("-c")
            .arg(&conf)
            .env("AWS_ACCESS_KEY_ID", "fake")
            .env("AWS_SECRET_ACCESS_KEY", "fake")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.host.fluent_bit.display()))?;
        let stdin = child.stdin.take();
        Ok(FluentBit { child, log, stdin })
    }
}

/// A running Fluent Bit, killed on drop if still running.
struct FluentBit {
    child: Child,
    log: PathBuf,
    stdin: Option<ChildStdin>,
}

impl FluentBit {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: libc::c_int) -> Result<(), Failed> {
        // SAFETY: kill(2) on our own child's pid.
        if unsafe { libc::kill(self.pid(), signal) } != 0 {
            return Err(format!(
                "kill({}, {signal}): {}",
                self.pid(),
                std::io::Error::last_os_error()
            )
            .into());
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Hands stdin to a thread that writes what it is sent and closes stdin (end of
    /// input: Fluent Bit flushes and exits) when the sender is dropped.
    fn feeder(&mut self) -> Result<Feeder, Failed> {
        let mut stdin = self
            .stdin
            .take()
            .ok_or("Fluent Bit was started without a stdin pipe")?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            for bytes in rx {
                stdin.write_all(&bytes)?;
            }
            stdin.flush()
        });
        Ok(Feeder {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Waits for Fluent Bit to exit by itself, at most `limit`.
    async fn wait_exit(&mut self, limit: Duration, what: &str) -> Result<ExitStatus, Failed> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                return Err(format!("Fluent Bit did not exit within {limit:?} {what}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until Fluent Bit's log holds `needle` at least `times` times.
    async fn wait_log(&self, needle: &str, times: usize, limit: Duration) -> Result<(), Failed> {
        let started = Instant::now();
        loop {
            let found = self.log().matches(needle).count();
            if found >= times {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "Fluent Bit's log holds {needle:?} {found} times after {limit:?}, expected {times}"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks the plugin's exit summaries (one per instance and context): there are
    /// `instances` of them and their "N records stored" add up to `stored`.
    fn check_exit_lines(&self, instances: usize, stored: usize) -> Result<(), Failed> {
        let log = self.log();
        let summaries: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[output:kpl_kinesis") && l.contains("exit:"))
            .collect();
        if summaries.len() != instances {
            return Err(format!(
                "the plugin logged {} exit summaries (\"exit: ...\"), expected {instances}",
                summaries.len()
            )
            .into());
        }
        let mut total = 0;
        for line in &summaries {
            let after = &line[line.find("exit:").unwrap_or(0) + 5..];
            let n: usize = after
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|_| after.contains("records stored"))
                .ok_or_else(|| format!("no \"exit: N records stored\" in {line:?}"))?;
            total += n;
        }
        if total != stored {
            return Err(format!(
                "the plugin's exit summaries count {total} records stored, the stream holds {stored}: {summaries:?}"
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for FluentBit {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes to Fluent Bit's stdin from a thread (a pipe: `in_stdin` needs one).
struct Feeder {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Feeder {
    fn send(&self, lines: &[String]) -> Result<(), Failed> {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(bytes).ok())
            .ok_or_else(|| "the stdin writer has stopped (Fluent Bit closed its stdin?)".into())
    }

    /// Closes stdin once everything sent is written; the writer's error, if any.
    async fn close(mut self) -> Result<(), Failed> {
        self.tx.take();
        let thread = self.thread.take().ok_or("closed twice")?;
        let result = tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| format!("stdin writer: {e}"))?;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing Fluent Bit's stdin: {e}").into()),
            Err(_) => Err("the stdin writer panicked".into()),
        }
    }
}

/// User records as a multiset of (partition key, data); the key is "" when the trial does
/// not check keys (random ones).
type Records = BTreeMap<(String, Vec<u8>), usize>;

/// The KPL aggregate's magic: Kinesis records without it hold one user record, sent alone.
const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// A stream as a KCL consumer sees it: its user records (keys kept or not), how many
/// Kinesis records hold them, and how many of those are not aggregates. An aggregate the
/// hash-range filter would drop is an error.
async fn read_stream(
    admin: &Client,
    stream: &str,
    keys: bool,
) -> Result<(Records, usize, usize), Failed> {
    let stored = support::read_all(admin, stream).await;
    let alone = stored
        .iter()
        .filter(|s| !s.data.starts_with(&MAGIC))
        .count();
    let (users, dropped) = support::kcl_view(&stored);
    if dropped > 0 {
        return Err(format!(
            "{stream}: KCL would drop records from {dropped} aggregates (hash key outside the shard's range)"
        )
        .into());
    }
    let records = support::counts(
        users
            .into_iter()
            .map(|(k, d)| (if keys { k } else { String::new() }, d)),
    );
    Ok((records, stored.len(), alone))
}

/// [`support::assert_same_records`], as an error (with the log tail) instead of a panic.
fn same_records(actual: &Records, expected: &Records, what: &str) -> Result<(), Failed> {
    std::panic::catch_unwind(|| support::assert_same_records(actual, expected, what)).map_err(
        |panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| format!("{what}: the records differ"))
                .into()
        },
    )
}

/// How many of `expected` are in `actual` (each counted up to its expected number).
fn present(actual: &Records, expected: &Records) -> usize {
    expected
        .iter()
        .map(|(k, n)| (*n).min(actual.get(k).copied().unwrap_or(0)))
        .sum()
}

/// Polls the stream until it holds every record of `expected` (extra ones may be there);
/// returns what it read last.
async fn wait_stored(
    admin: &Client,
    stream: &str,
    expected: &Records,
    keys: bool,
    limit: Duration,
) -> Result<Records, Failed> {
    let want: usize = expected.values().sum();
    let started = Instant::now();
    loop {
        let (actual, _, _) = read_stream(admin, stream, keys).await?;
        let got = present(&actual, expected);
        if got == want {
            return Ok(actual);
        }
        if started.elapsed() > limit {
            return Err(format!(
                "after {limit:?}, stream {stream} holds {got} of the {want} lines expected so far"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What `kinesis_streams` (and the plugin) send for a record: its JSON and a newline.
fn data_of(json: &str) -> Vec<u8> {
    let mut d = json.as_bytes().to_vec();
    d.push(b'\n');
    d
}

/// A line read by `tail` without a parser: `{"log":"<line>"}` (the lines hold no character
/// JSON would escape).
fn tail_data(line: &str) -> Vec<u8> {
    data_of(&format!("{{\"log\":\"{line}\"}}"))
}

fn service(extra: &[(&str, &str)]) -> String {
    let mut s = String::from("[SERVICE]\n    flush 1\n    log_level info\n");
    for (k, v) in extra {
        s.push_str(&format!("    {k} {v}\n"));
    }
    s
}

/// Scenario 1: 100,000 NDJSON lines of about 100 bytes through `stdin` (a pipe; Fluent Bit exits by
/// itself at the end of its input, after flushing), partition key from a field with 500
/// values, a 4-shard stream: every line exactly once under its own key, aggregated (at
/// least 100 user records per Kinesis record), and the plugin's exit summary agrees.
async fn stdin_hundred_thousand(s: Scenario) -> Result<(), Failed> {
    const N: usize = 100_000;
    const STREAM: &str = "fb-stdin";
    let admin = support::admin();
    support::create_stream(&admin, STREAM, 4).await;
    let lines: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "{{\"seq\":{i},\"pk\":\"k{:03}\",\"msg\":\"{}\"}}",
                (i * 7919) % 500,
                "x".repeat(60)
            )
        })
        .collect();
    let expected = support::counts(
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("k{:03}", (i * 7919) % 500), data_of(l))),
    );
    // A flush blocks its thread until its records are stored: workers keep the engine
    // (and the input) going meanwhile. The grace period covers storing everything after
    // the end of input.
    let config = format!(
        "{}[INPUT]\n    name stdin\n    tag lines\n{}",
        service(&[("grace", "120")]),
        s.output(
            STREAM,
            "lines",
            &[("partition_key", "$pk"), ("workers", "2")],
            ""
        )?
    );
    let mut fb = s.start(&config, true)?;
    let feeder = fb.feeder()?;
    feeder.send(&lines)?;
    feeder.close().await?;
    let status = fb
        .wait_exit(
            Duration::from_secs(120),
            "after the end of its input (100,000 lines)",
        )
        .await?;
    if !status.success() {
        return Err(format!("Fluent Bit exited with {status}").into());
    }
    let (actual, kinesis_records, alone) = read_stream(&admin, STREAM, true).await?;
    same_records(&actual, &expected, "stdin, 100,000 lines")?;
    let ratio = N as f64 / kinesis_records.max(1) as f64;
    if ratio < 100.0 {
        return Err(format!(
            "{N} user records in {kinesis_records} Kinesis records: {ratio:.1} per record, expected at least 100; \
             {alone} of the Kinesis records are user records sent alone, not aggregated"
        )
        .into());
    }
    fb.check_exit_lines(1, N)?;
    eprintln!("  stdin: {N} lines in {kinesis_records} Kinesis records ({ratio:.0} per record, {alone} not aggregated)");
    Ok(())
}

/// Scenario 2: `tail` on a file that grows while Fluent Bit runs (four appends, each once the one
/// before is stored), random partition keys, then SIGTERM: every line exactly once, a
/// clean exit (status 0) and the exit summary.
async fn tail_growing_file(s: Scenario) -> Result<(), Failed> {
    const STREAM: &str = "fb-tail";
    const BATCH: usize = 2_500;
    let admin = support::admin();
    support::create_stream(&admin, STREAM, 2).await;
    let file = s.path("app.log");
    let line = |b: usize, i: usize| format!("batch {b} line {i:05} {}", "y".repeat(70));
    let append = |b: usize| -> Result<(), Failed> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let mut text = String::new();
        for i in 0..BATCH {
            text.push_str(&line(b, i));
            text.push('\n');
        }
        f.write_all(text.as_bytes())?;
        Ok(())
    };
    append(0)?;
    let config = format!(
        "{}[INPUT]\n    name tail\n    tag app\n    path {}\n    read_from_head on\n    refresh_interval 1\n{}",
        service(&[("grace", "30")]),
        file.display(),
        s.output(STREAM, "app", &[("workers", "2")], "")?
    );
    let mut fb = s.start(&config, false)?;
    let mut expected = Records::new();
    for b in 0..4 {
        if b > 0 {
            append(b)?;
        }
        for i in 0..BATCH {
            expected.insert((String::new(), tail_data(&line(b, i))), 1);
        }
        wait_stored(&admin, STREAM, &expected, false, Duration::from_secs(60))
            .await
            .map_err(|e| format!("append {b}: {}", e.message().unwrap_or_default()))?;
    }
    fb.signal(libc::SIGTERM)?;
    let status = fb
        .wait_exit(Duration::from_secs(40), "after SIGTERM")
        .await?;
    if !status.success() {
        return Err(format!("Fluent Bit exited with {status} after SIGTERM").into());
    }
    let (actual, _, _) = read_stream(&admin, STREAM, false).await?;
    same_records(&actual, &expected, "tail, 4 appends of 2,500 lines")?;
    fb.check_exit_lines(1, 4 * BATCH)?;
    Ok(())
}

/// Appends numbered lines to a file from a thread, in slices, until stopped; the lines
/// written are `prefix NNNNNNN` plus padding.
struct Appender {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<usize>>>,
    written: Arc<std::sync::atomic::AtomicUsize>,
}

impl Appender {
    fn start(path: PathBuf, per_slice: usize, every: Duration) -> Appender {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, written2) = (stop.clone(), written.clone());
        let thread = std::thread::spawn(move || -> std::io::Result<usize> {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                let mut text = String::new();
                for _ in 0..per_slice {
                    text.push_str(&reload_line(n));
                    text.push('\n');
                    n += 1;
                }
                // One write per slice of whole lines.
                f.write_all(text.as_bytes())?;
                written2.store(n, Ordering::Relaxed);
                // The input's pace, not a synchronisation.
                std::thread::sleep(every);
            }
            Ok(n)
        });
        Appender {
            stop,
            thread: Some(thread),
            written,
        }
    }

    fn written(&self) -> usize {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(mut self) -> Result<usize, Failed> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(n))) => Ok(n),
            Some(Ok(Err(e))) => Err(format!("appending to the tailed file: {e}").into()),
            _ => Err("the appender panicked".into()),
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn reload_line(n: usize) -> String {
    format!("reload {n:07} {}", "z".repeat(60))
}

/// The offset `tail` recorded for `file` in its database: how far it read (it stores
/// the end of the last complete line it turned into records).
fn tail_db_offset(db: &Path, file: &Path) -> Result<u64, Failed> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.execute('select offset from in_tail_files where name = ?', (sys.argv[2],)).fetchone()[0])")
        .arg(db)
        .arg(file)
        .output()
        .map_err(|e| format!("python3 (to read tail's sqlite database): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "reading {}: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| format!("tail's offset is not a number: {text:?}").into())
}

/// Scenario 4: two instances (`workers 2` each) on the same tag, each into its own stream, records
/// held up to 5 s in the sink; lines appended without pause to a tailed file (with a
/// database). SIGHUP (hot reload) mid-run, then SIGTERM while lines still arrive and
/// records sit in the sinks. What must hold: every line `tail` read (the lines up to the
/// offset it recorded in its database, which it advances as it turns lines into records,
/// before or after the reload) is in both streams exactly once, and no other line.
async fn reload_then_sigterm(s: Scenario) -> Result<(), Failed> {
    const A: &str = "fb-reload-a";
    const B: &str = "fb-reload-b";
    let admin = support::admin();
    support::create_stream(&admin, A, 2).await;
    support::create_stream(&admin, B, 2).await;
    let file = s.path("app.log");
    let db = s.path("tail.db");
    std::fs::write(&file, "")?;
    let extra = [("workers", "2"), ("record_max_buffered_time", "5000")];
    // flush 3: each flush holds a worker for up to the 5 s of buffering, and two workers
    // must keep up with a chunk every flush interval.
    let config = format!(
        "[SERVICE]\n    flush 3\n    grace 60\n    hot_reload on\n    log_level info\n[INPUT]\n    name tail\n    tag app\n    path {}\n    db {}\n    read_from_head on\n    refresh_interval 1\n{}{}",
        file.display(),
        db.display(),
        s.output(A, "app", &extra, "")?,
        s.output(B, "app", &extra, "")?,
    );
    let mut fb = s.start(&config, false)?;
    let appender = Appender::start(file.clone(), 40, Duration::from_millis(100));
    let first = |n: usize| -> Records {
        (0..n)
            .map(|i| ((String::new(), tail_data(&reload_line(i))), 1))
            .collect()
    };
    // Running: the first 500 lines in both streams.
    for stream in [A, B] {
        wait_stored(&admin, stream, &first(500), false, Duration::from_secs(60)).await?;
    }
    fb.signal(libc::SIGHUP)?;
    fb.wait_log(
        "[reload] successful reload done",
        1,
        Duration::from_secs(90),
    )
    .await?;
    // The new context delivers: lines written after the reload reach both streams.
    let after_reload = appender.written() + 200;
    for stream in [A, B] {
        wait_stored(
            &admin,
            stream,
            &first(after_reload),
            false,
            Duration::from_secs(60),
        )
        .await?;
    }
    let (before, _, _) = read_stream(&admin, A, false).await?;
    fb.signal(libc::SIGTERM)?;
    let status = fb
        .wait_exit(Duration::from_secs(90), "after SIGTERM (grace 60)")
        .await;
    let written = appender.stop()?;
    let status = status?;
    if !status.success() {
        return Err(format!("Fluent Bit exited with {status} after SIGTERM").into());
    }
    let offset = tail_db_offset(&db, &file)? as usize;
    let text = std::fs::read(&file)?;
    if offset > text.len() || (offset > 0 && text[offset - 1] != b'\n') {
        return Err(format!(
            "tail's offset {offset} is not the end of a line of {} ({} bytes)",
            file.display(),
            text.len()
        )
        .into());
    }
    let read = text[..offset].iter().filter(|&&c| c == b'\n').count();
    if read < after_reload {
        return Err(format!("tail's offset says {read} lines were read, but {after_reload} were stored before SIGTERM").into());
    }
    let expected = first(read);
    let before = present(&before, &expected);
    if before >= read {
        return Err(format!(
            "all {read} lines read were already stored when SIGTERM came: nothing was buffered, the scenario tested nothing"
        )
        .into());
    }
    for stream in [A, B] {
        let (actual, _, _) = read_stream(&admin, stream, false).await?;
        same_records(
            &actual,
            &expected,
            &format!("{stream}: the {read} lines tail read (of {written} written)"),
        )?;
    }
    // Two instances, each exiting at the reload and at SIGTERM.
    fb.check_exit_lines(4, 2 * read)?;
    eprintln!(
        "  reload: {written} lines written, {read} read by tail, {before} stored in {A} when SIGTERM came, all {read} in both streams after"
    );
    Ok(())
}

/// Resumes kinesis-mock if the trial ends while it is paused.
struct Paused(i32);

impl Paused {
    fn pause(pid: i32) -> Result<Paused, Failed> {
        // SAFETY: kill(2) on the mock server's pid.
        if unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
            return Err(format!("SIGSTOP {pid}: {}", std::io::Error::last_os_error()).into());
        }
        Ok(Paused(pid))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Scenario 3: Kinesis unreachable mid-run: kinesis-mock is paused (SIGSTOP) for 10 s while lines
/// arrive on stdin, then resumed. `record_ttl 3000`, so records put during the pause
/// expire and their flush returns FLB_RETRY; Fluent Bit retries the chunk (`retry_limit
/// no_limits`, scheduler base 1 s, cap 2 s) and the plugin sends only the records of the
/// chunk that are not stored yet. Every line exactly once, and the log shows the retry.
///
/// `MaxConnections = 1`: the one request sent during the pause waits for its answer (the
/// minute of `RequestTimeout`: it is answered after the resume, and stored once), and the
/// records put after it wait in the sink's buffer, where their TTL runs out. With more
/// connections they would sit in requests that the paused server answers late instead,
/// and never expire.
async fn kinesis_paused(s: Scenario) -> Result<(), Failed> {
    const STREAM: &str = "fb-pause";
    let admin = support::admin();
    support::create_stream(&admin, STREAM, 2).await;
    let output = s.output(
        STREAM,
        "lines",
        &[
            ("workers", "2"),
            ("record_ttl", "3000"),
            ("retry_limit", "no_limits"),
        ],
        "MaxConnections = 1\n",
    )?;
    let config = format!(
        "{}[INPUT]\n    name stdin\n    tag lines\n{output}",
        service(&[
            ("grace", "60"),
            ("scheduler.base", "1"),
            ("scheduler.cap", "2")
        ]),
    );
    let line = |phase: &str, i: usize| {
        format!(
            "{{\"phase\":\"{phase}\",\"n\":{i},\"pad\":\"{}\"}}",
            "w".repeat(50)
        )
    };
    let batch = |phase: &str, from: usize, n: usize| -> Vec<String> {
        (from..from + n).map(|i| line(phase, i)).collect()
    };
    let mut expected = Records::new();
    let expect = |expected: &mut Records, lines: &[String]| {
        for l in lines {
            expected.insert((String::new(), data_of(l)), 1);
        }
    };
    let mut fb = s.start(&config, true)?;
    let feeder = fb.feeder()?;

    let before = batch("before", 0, 1_000);
    feeder.send(&before)?;
    expect(&mut expected, &before);
    wait_stored(&admin, STREAM, &expected, false, Duration::from_secs(60)).await?;

    // Kinesis stops answering; lines keep coming for 8 s, the pause lasts 10 s.
    let paused = Paused::pause(s.host.mock_pid)?;
    let paused_at = Instant::now();
    for slice in 0..16 {
        let lines = batch("paused", slice * 100, 100);
        feeder.send(&lines)?;
        expect(&mut expected, &lines);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(paused_at.elapsed())).await;
    drop(paused);

    // The plugin gave a chunk back (FLB_RETRY) and Fluent Bit scheduled its retry.
    fb.wait_log("retry in", 1, Duration::from_secs(60)).await?;
    let log = fb.log();
    if !log
        .lines()
        .any(|l| l.contains("[output:kpl_kinesis") && l.contains("retry"))
    {
        return Err("Fluent Bit retried a chunk but the plugin logged no line about it".into());
    }

    let after = batch("after", 0, 1_000);
    feeder.send(&after)?;
    expect(&mut expected, &after);
    wait_stored(&admin, STREAM, &expected, false, Duration::from_secs(60)).await?;
    feeder.close().await?;
    let status = fb
        .wait_exit(Duration::from_secs(60), "after the end of its input")
        .await?;
    if !status.success() {
        return Err(format!("Fluent Bit exited with {status}").into());
    }
    let (actual, _, _) = read_stream(&admin, STREAM, false).await?;
    same_records(&actual, &expected, "stdin across a 10 s Kinesis pause")?;
    if !fb.log().contains("succeeded at retry") {
        return Err("Fluent Bit never logged that a retried chunk succeeded".into());
    }
    fb.check_exit_lines(1, expected.len())?;
    Ok(())
}
