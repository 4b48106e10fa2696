//! moto's DynamoDB server for the lease tests, started inside the test's private network
//! namespace (after `support::enter_namespace_and_start`). moto comes from
//! `KPL_DYNAMODB_DIR` (a pip `--target` folder), by default `.tools/dynamodb/python`, which
//! `bash ci/dynamodb install` sets up.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Its endpoint.
pub const ENDPOINT: &str = "http://127.0.0.1:8000";

/// The server, stopped on drop.
pub struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto's server on 127.0.0.1:8000 (inside the test's network namespace) and
/// waits until it listens.
pub fn start() -> Moto {
    let dir = std::env::var_os("KPL_DYNAMODB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .find(|d| d.join("Cargo.lock").exists())
                .unwrap_or(&manifest)
                .join(".tools/dynamodb/python")
        });
    assert!(
        dir.join("moto").exists(),
        "moto not found in {}: run `bash ci/dynamodb install`",
        dir.display()
    );
    let log_path = std::env::temp_dir().join(format!("moto-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
    let child = Command::new("python3")
        .args(["-s", "-m", "moto.server", "-H", "127.0.0.1", "-p", "8000"])
        .env("PYTHONPATH", &dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto: {e}"));
    let moto = Moto(child);
    let started = Instant::now();
    while std::net::TcpStream::connect("127.0.0.1:8000").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto did not listen in 60 s; its log: {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}
