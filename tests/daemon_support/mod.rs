//! Running the real `akv-sync` binary against an in-process emulator, and waiting on its
//! JSON log lines (stderr) as readiness signals instead of sleeping.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use akv_sync::azure::net::env_for_emulator;
use akv_sync_emulator::{Emulator, EmulatorOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_akv-sync");

/// The emulator runs on a runtime of its own, so that tests may block on the agent's output.
pub struct Env {
    pub emulator: Emulator,
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn start() -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let emulator = rt
            .block_on(akv_sync_emulator::start(EmulatorOptions {
                state_dir: dir.path().join("emulator"),
                arc_token_dir: dir.path().join("arc"),
                ..EmulatorOptions::default()
            }))
            .unwrap();
        let store = dir.path().join("store");
        Env {
            emulator,
            dir,
            store,
            rt,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a settings file; `certs` are (vault, name); `extra` merges into the top level.
    pub fn write_settings(
        &self,
        file: &str,
        certs: &[(&str, &str)],
        sms_extra: serde_json::Value,
        top_extra: serde_json::Value,
    ) -> PathBuf {
        let observed: Vec<serde_json::Value> = certs
            .iter()
            .map(|(v, n)| {
                serde_json::json!({
                    "url": format!("https://{v}.vault.azure.net/secrets/{n}"),
                    "certificateStoreLocation": self.store.display().to_string(),
                })
            })
            .collect();
        let mut sms = serde_json::json!({
            "pollingIntervalInS": "1",
            "requireInitialSync": true,
            "observedCertificates": observed,
        });
        if let serde_json::Value::Object(m) = sms_extra {
            for (k, v) in m {
                sms[k] = v;
            }
        }
        let mut top = serde_json::json!({ "secretsManagementSettings": sms });
        if let serde_json::Value::Object(m) = top_extra {
            for (k, v) in m {
                top[k] = v;
            }
        }
        let path = self.path(file);
        std::fs::write(&path, serde_json::to_string_pretty(&top).unwrap()).unwrap();
        path
    }

    /// `akv-sync <args>` with the environment pointing it at the emulator.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for (k, v) in env_for_emulator(
            self.emulator.vault_addr,
            &self.emulator.ca_file,
            &self.emulator.imds_endpoint,
        ) {
            cmd.env(k, v);
        }
        cmd.env_remove("AKV_SYNC_LOG").env_remove("NOTIFY_SOCKET");
        cmd
    }

    /// Start `akv-sync run --settings FILE --log-format json --no-log-file <extra>`.
    pub fn run(&self, settings: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "run",
            "--settings",
            settings.to_str().unwrap(),
            "--log-format",
            "json",
        ];
        if !extra.contains(&"--log-dir") {
            args.push("--no-log-file");
        }
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }
}

pub struct Daemon {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Daemon {
    /// Wait (at most 90 s) for a JSON log line for which `pred` holds; return it.
    pub fn wait_line(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && pred(&v)
                    {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no log line for {what} within 90 s; lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait for the status line with `state` (`success`, `error`, …).
    pub fn wait_status(&mut self, state: &str) -> serde_json::Value {
        self.wait_line(&format!("status {state}"), |v| v["status"] == state)
    }

    /// Wait for a message containing `text`.
    pub fn wait_message(&mut self, text: &str) -> serde_json::Value {
        self.wait_line(text, |v| {
            v["message"].as_str().is_some_and(|m| m.contains(text))
        })
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGTERM, then wait for exit; returns the exit code and drains the remaining lines.
    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version a store link points at.
pub fn installed(store: &Path, vault: &str, name: &str) -> Option<String> {
    let t = std::fs::read_link(store.join(format!("{vault}.{name}"))).ok()?;
    t.to_string_lossy()
        .strip_prefix(&format!("{vault}.{name}."))
        .map(str::to_owned)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from the agent's metrics address: (HTTP status, body).
pub fn scrape(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the first sample of `name` whose labels include every `k="v"` in `labels`.
pub fn metric(body: &str, name: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && labels.split(',').all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
