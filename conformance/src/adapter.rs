//! Talking to an adapter process: one JSON line out, one JSON line back, with a timeout.
//! A crash, a timeout or a malformed answer is an [`Answer`] like any other; the process
//! is restarted for the next request.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A JSON object with `"ok": true`.
    Ok(Value),
    /// A JSON object with `"ok": false`: the implementation's error message.
    Refused(String),
    /// The process exited or closed its output before answering.
    Crash(String),
    /// No answer within the timeout.
    Timeout,
    /// A line that is not a JSON object with a boolean `ok`.
    Malformed(String),
}

impl Answer {
    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Answer::Ok(_) => "ok".into(),
            Answer::Refused(e) => format!("error: {e}"),
            Answer::Crash(e) => format!("crash: {e}"),
            Answer::Timeout => "timeout".into(),
            Answer::Malformed(line) => format!("malformed answer: {}", truncate(line, 120)),
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "..."
    }
}

/// A running adapter.
pub struct AdapterProcess {
    command: String,
    timeout: Duration,
    running: Option<Running>,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Option<String>>,
}

impl AdapterProcess {
    /// An adapter started as `sh -c COMMAND` (lazily, at the first request).
    pub fn new(command: &str, timeout: Duration) -> Self {
        AdapterProcess {
            command: command.to_string(),
            timeout,
            running: None,
        }
    }

    /// Waits `timeout` for each answer from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn start(&mut self) -> Result<&mut Running, String> {
        if self.running.is_none() {
            let mut command = Command::new("sh");
            command.arg("-c").arg(&self.command);
            // Its own process group, so that stopping it also stops what it started
            // (`bash run.sh` starting a JVM, say).
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start `{}`: {e}", self.command))?;
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(line) => {
                            if tx.send(Some(line)).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                let _ = tx.send(None);
            });
            self.running = Some(Running {
                child,
                stdin,
                lines: rx,
            });
        }
        self.running
            .as_mut()
            .ok_or_else(|| "not running".to_string())
    }

    /// Stops the process (it is started again at the next request).
    pub fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            #[cfg(unix)]
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--"])
                .arg(format!("-{}", running.child.id()))
                .stderr(Stdio::null())
                .status();
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }

    /// Sends one request and waits for its answer.
    pub fn request(&mut self, request: &Value) -> Answer {
        let timeout = self.timeout;
        let running = match self.start() {
            Ok(r) => r,
            Err(e) => return Answer::Crash(e),
        };
        let line = request.to_string() + "\n";
        if running.stdin.write_all(line.as_bytes()).is_err() || running.stdin.flush().is_err() {
            self.stop();
            return Answer::Crash("the adapter closed its input".into());
        }
        let answer = match running.lines.recv_timeout(timeout) {
            Ok(Some(line)) => parse_answer(&line),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                let status = running
                    .child
                    .wait()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                Answer::Crash(format!("the adapter exited ({status})"))
            }
            Err(RecvTimeoutError::Timeout) => Answer::Timeout,
        };
        if !matches!(answer, Answer::Ok(_) | Answer::Refused(_)) {
            self.stop();
        }
        answer
    }
}

impl Drop for AdapterProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_answer(line: &str) -> Answer {
    let Ok(value) = serde_json::from_str::<Value>(line) else {
        return Answer::Malformed(line.to_string());
    };
    match value.get("ok").and_then(Value::as_bool) {
        Some(true) => Answer::Ok(value),
        Some(false) => Answer::Refused(
            value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_string(),
        ),
        None => Answer::Malformed(line.to_string()),
    }
}
