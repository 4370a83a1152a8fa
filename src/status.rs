//! Where status goes: the VM agent's status file, systemd's notify socket, and the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use akv_sync_actors::{State, Status, StatusSink};
use serde::Serialize;

/// The extension's name as the VM agent shows it.
pub const HANDLER_NAME: &str = "Microsoft.Azure.KeyVault.KeyVaultForLinux";

/// Writes `status/<seq>.status` in the VM agent's format, atomically (temporary file in the
/// same folder, fsync, rename), on every change.
pub struct VmAgentStatus {
    path: PathBuf,
    operation: String,
}

#[derive(Serialize)]
struct StatusFile<'a> {
    version: &'a str,
    #[serde(rename = "timestampUTC")]
    timestamp_utc: String,
    status: StatusBody<'a>,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    name: &'a str,
    operation: &'a str,
    status: &'a str,
    code: i32,
    #[serde(rename = "formattedMessage")]
    formatted_message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    lang: &'a str,
    message: &'a str,
}

impl VmAgentStatus {
    /// `status_dir/<seq>.status`; `operation` is the handler command ("Enable", …).
    pub fn new(status_dir: &Path, sequence: u64, operation: &str) -> Self {
        VmAgentStatus {
            path: status_dir.join(format!("{sequence}.status")),
            operation: operation.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Render the status file's JSON.
    pub fn render(&self, status: &Status, now: SystemTime) -> String {
        let file = [StatusFile {
            version: "1.0",
            timestamp_utc: humantime::format_rfc3339_seconds(now).to_string(),
            status: StatusBody {
                name: HANDLER_NAME,
                operation: &self.operation,
                status: status.state.as_str(),
                code: if status.state == State::Error { 1 } else { 0 },
                formatted_message: Message {
                    lang: "en-US",
                    message: &status.message,
                },
            },
        }];
        serde_json::to_string(&file).expect("status serializes")
    }

    /// Write the file atomically.
    pub fn write(&self, status: &Status) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir)?;
        tmp.1
            .write_all(self.render(status, SystemTime::now()).as_bytes())?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".akv-sync.status.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    Ok((path, file))
}

impl StatusSink for VmAgentStatus {
    fn report(&self, status: &Status) {
        if let Err(e) = self.write(status) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the VM agent status file");
        }
    }
}

/// systemd: `READY=1` once the status first reaches `success`, and `STATUS=` lines always.
/// Does nothing when not started by systemd (`NOTIFY_SOCKET` unset).
#[derive(Default)]
pub struct Systemd {
    ready_sent: Mutex<bool>,
}

impl StatusSink for Systemd {
    fn report(&self, status: &Status) {
        let line = format!("{}: {}", status.state.as_str(), status.message);
        let mut ready = self.ready_sent.lock().expect("systemd lock");
        let mut states = vec![sd_notify::NotifyState::Status(&line)];
        if status.state == State::Success && !*ready {
            states.push(sd_notify::NotifyState::Ready);
            *ready = true;
        }
        let _ = sd_notify::notify(&states);
    }
}

/// Logs every status change.
pub struct LogStatus;

impl StatusSink for LogStatus {
    fn report(&self, status: &Status) {
        match status.state {
            State::Error => tracing::error!(status = status.state.as_str(), "{}", status.message),
            State::Warning => tracing::warn!(status = status.state.as_str(), "{}", status.message),
            _ => tracing::info!(status = status.state.as_str(), "{}", status.message),
        }
    }
}

/// Several sinks as one.
pub struct Fanout(pub Vec<Arc<dyn StatusSink>>);

impl StatusSink for Fanout {
    fn report(&self, status: &Status) {
        for sink in &self.0 {
            sink.report(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_has_the_vm_agent_shape() {
        let dir = tempfile::tempdir().unwrap();
        let sink = VmAgentStatus::new(dir.path(), 3, "Enable");
        sink.report(&Status {
            state: State::Transitioning,
            message: "initial sync: 0 of 2".into(),
        });
        let text = std::fs::read_to_string(dir.path().join("3.status")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v[0];
        assert_eq!(s["version"], "1.0");
        assert!(s["timestampUTC"].as_str().unwrap().ends_with('Z'));
        assert_eq!(s["status"]["name"], HANDLER_NAME);
        assert_eq!(s["status"]["operation"], "Enable");
        assert_eq!(s["status"]["status"], "transitioning");
        assert_eq!(s["status"]["code"], 0);
        assert_eq!(s["status"]["formattedMessage"]["lang"], "en-US");
        assert_eq!(
            s["status"]["formattedMessage"]["message"],
            "initial sync: 0 of 2"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
