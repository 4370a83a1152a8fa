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
    /// Moves to another sequence's file when the settings do ([`VmAgentStatus::retarget`]).
    path: Mutex<PathBuf>,
    operation: String,
}

/// The most bytes of `formattedMessage.message` the portal shows; longer messages are cut
/// (at a character boundary, marked with `…`).
pub const MESSAGE_LIMIT: usize = 1024;

/// At most this many failed certificates are listed in `substatus`, one entry each; past it,
/// one more entry says how many were left out.
pub const SUBSTATUS_LIMIT: usize = akv_sync_actors::LISTED_FAILURES;

#[derive(Serialize)]
struct StatusFile<'a> {
    /// A number, as in the VM agent's own files (`"version": 1.0`).
    version: f64,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    substatus: Vec<SubStatus<'a>>,
}

/// One failed certificate, as the VM agent's instance view lists it.
#[derive(Serialize)]
struct SubStatus<'a> {
    name: String,
    status: &'a str,
    code: i32,
    #[serde(rename = "formattedMessage")]
    formatted_message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    lang: &'a str,
    message: std::borrow::Cow<'a, str>,
}

/// `text` cut to at most [`MESSAGE_LIMIT`] bytes at a character boundary, with `…` marking a
/// cut.
pub fn within_limit(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MESSAGE_LIMIT {
        return text.into();
    }
    const MARK: &str = "…";
    let mut end = MESSAGE_LIMIT - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end]).into()
}

fn substatus(status: &Status) -> Vec<SubStatus<'_>> {
    let mut list: Vec<SubStatus<'_>> = status
        .failures
        .iter()
        .take(SUBSTATUS_LIMIT)
        .map(|f| SubStatus {
            name: within_limit(&f.id).into_owned(),
            status: State::Error.as_str(),
            code: 1,
            formatted_message: Message {
                lang: "en-US",
                message: within_limit(&f.why),
            },
        })
        .collect();
    let left_out = status.failed_count.saturating_sub(list.len());
    if left_out > 0 {
        list.push(SubStatus {
            name: "more certificates".into(),
            status: State::Error.as_str(),
            code: 1,
            formatted_message: Message {
                lang: "en-US",
                message: format!("{left_out} more failed certificate(s) not listed").into(),
            },
        });
    }
    list
}

impl VmAgentStatus {
    /// `status_dir/<seq>.status`; `operation` is the handler command ("Enable", …).
    pub fn new(status_dir: &Path, sequence: u64, operation: &str) -> Self {
        VmAgentStatus {
            path: Mutex::new(status_dir.join(format!("{sequence}.status"))),
            operation: operation.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.path.lock().expect("status path lock").clone()
    }

    /// Report to `<sequence>.status` in the same folder from now on.
    pub fn retarget(&self, sequence: u64) {
        let mut path = self.path.lock().expect("status path lock");
        *path = path.with_file_name(format!("{sequence}.status"));
    }

    /// Render the status file's JSON.
    pub fn render(&self, status: &Status, now: SystemTime) -> String {
        let file = [StatusFile {
            version: 1.0,
            timestamp_utc: humantime::format_rfc3339_seconds(now).to_string(),
            status: StatusBody {
                name: HANDLER_NAME,
                operation: &self.operation,
                status: status.state.as_str(),
                code: if status.state == State::Error { 1 } else { 0 },
                formatted_message: Message {
                    lang: "en-US",
                    message: within_limit(&status.message),
                },
                substatus: substatus(status),
            },
        }];
        serde_json::to_string(&file).expect("status serializes")
    }

    /// Write the file atomically.
    pub fn write(&self, status: &Status) -> std::io::Result<()> {
        let path = self.path();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir)?;
        tmp.1
            .write_all(self.render(status, SystemTime::now()).as_bytes())?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &path)?;
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
            tracing::error!(path = %self.path().display(), error = %e, "cannot write the VM agent status file");
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
        sink.report(&Status::new(State::Transitioning, "initial sync: 0 of 2"));
        let text = std::fs::read_to_string(dir.path().join("3.status")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v[0];
        // A number, as the VM agent writes it.
        assert!(s["version"].is_f64(), "{text}");
        assert_eq!(s["version"].as_f64(), Some(1.0));
        assert!(text.contains(r#""version":1.0"#), "{text}");
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

    fn rendered(status: &Status) -> serde_json::Value {
        let sink = VmAgentStatus::new(Path::new("/nonexistent"), 0, "Enable");
        let text = sink.render(status, SystemTime::now());
        serde_json::from_str(&text).unwrap()
    }

    fn failures(n: usize, why: &str) -> Vec<akv_sync_actors::Failure> {
        (0..n)
            .map(|i| akv_sync_actors::Failure {
                id: format!("v/c{i} in /store"),
                why: why.into(),
            })
            .collect()
    }

    #[test]
    fn the_message_stays_within_the_kibibyte_the_portal_shows() {
        // Multi-byte characters: the cut must fall on a character boundary.
        let long = "é".repeat(3000);
        let v = rendered(&Status::new(State::Error, long.clone()));
        let message = v[0]["status"]["formattedMessage"]["message"]
            .as_str()
            .unwrap();
        assert!(message.len() <= MESSAGE_LIMIT, "{}", message.len());
        assert!(message.ends_with('…'));
        assert!(long.starts_with(message.trim_end_matches('…')));
        // A short message is left alone.
        let v = rendered(&Status::new(State::Success, "polling 2"));
        assert_eq!(v[0]["status"]["formattedMessage"]["message"], "polling 2");
    }

    #[test]
    fn each_failed_certificate_is_listed_in_substatus() {
        let mut status = Status::new(State::Error, "initial sync failed for 2 of 3");
        status.failures = failures(2, "403 Forbidden: the identity lacks get permission");
        status.failed_count = 2;
        let v = rendered(&status);
        let sub = v[0]["status"]["substatus"].as_array().unwrap();
        assert_eq!(sub.len(), 2);
        assert_eq!(sub[0]["name"], "v/c0 in /store");
        assert_eq!(sub[1]["name"], "v/c1 in /store");
        assert_eq!(sub[0]["status"], "error");
        assert_eq!(sub[0]["code"], 1);
        assert_eq!(sub[0]["formattedMessage"]["lang"], "en-US");
        assert_eq!(
            sub[0]["formattedMessage"]["message"],
            "403 Forbidden: the identity lacks get permission"
        );
        // Nothing failed: no substatus at all.
        let v = rendered(&Status::new(State::Success, "polling 3"));
        assert!(v[0]["status"].get("substatus").is_none());
    }

    #[test]
    fn substatus_is_capped_and_says_how_many_were_left_out() {
        let mut status = Status::new(State::Error, "initial sync failed");
        status.failures = failures(SUBSTATUS_LIMIT, &"x".repeat(5000));
        status.failed_count = 5000;
        let v = rendered(&status);
        let sub = v[0]["status"]["substatus"].as_array().unwrap();
        assert_eq!(sub.len(), SUBSTATUS_LIMIT + 1);
        for entry in sub {
            let m = entry["formattedMessage"]["message"].as_str().unwrap();
            assert!(m.len() <= MESSAGE_LIMIT);
        }
        assert!(
            sub[SUBSTATUS_LIMIT]["formattedMessage"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{} more", 5000 - SUBSTATUS_LIMIT))
        );
    }
}
