//! The initial-sync gate: turns the first-download results of every observed certificate
//! into the process's [`Status`] (SPEC §4).
//!
//! - Without `requireInitialSync`: `success` as soon as polling has started.
//! - With it: `transitioning` while first downloads are retried; `success` once every
//!   certificate was installed once; `error`, naming each certificate that failed and why, once
//!   every certificate is settled and at least one ran out of attempts (or failed fatally). A
//!   certificate that installs later still turns `error` into `success`.
//! - Either way, a certificate the settings refused ([`GateHandle::refused`]: a mistake in its
//!   own entry, SPEC §1.3) makes the status `error`, naming it, once every other certificate
//!   is settled: it cannot heal until the settings change, so readiness would be a lie.
//!
//! The gate is an actor; watchers send it facts, and it publishes the status through a
//! `watch` channel and to a [`StatusSink`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::port::{Failure, LISTED_FAILURES, State, Status, StatusSink};

/// Where a certificate stands in its first download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstSync {
    Pending,
    Installed,
    Failed(String),
}

/// Snapshot published by the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateView {
    pub status: Status,
    /// Every certificate settled (installed or failed) at least once.
    pub settled: bool,
    /// Changed in place by the gate; a clone of the view keeps its snapshot (the gate then
    /// copies the map on its next change, once).
    pub certificates: Arc<BTreeMap<String, FirstSync>>,
}

enum Msg {
    Track(String),
    Installed(String),
    Failed(String, String),
    Refused(String, String),
    Forget(String),
    PollingStarted,
}

/// How many certificates are in each state, kept as they change so that computing the
/// status costs O(1), not O(certificates), per event.
#[derive(Default)]
struct Tally {
    installed: usize,
    pending: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, s: &FirstSync, by: isize) {
        let n = match s {
            FirstSync::Pending => &mut self.pending,
            FirstSync::Installed => &mut self.installed,
            FirstSync::Failed(_) => &mut self.failed,
        };
        *n = n
            .checked_add_signed(by)
            .expect("gate tally stays consistent");
    }
}

struct GateActor {
    sink: Arc<dyn StatusSink>,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// The published view, which also holds the per-certificate map: the actor changes it in
    /// place, so a burst of events costs O(events), not a copy of the whole map. A view
    /// handed out ([`GateHandle::view`]) keeps its snapshot: the map is copied on write only
    /// while such a clone is alive.
    view: watch::Sender<GateView>,
    facts: Facts,
}

/// What the gate knows besides the map.
struct Facts {
    require_initial_sync: bool,
    polling_started: bool,
    tally: Tally,
    reached_success: bool,
    /// Certificates the settings refused (each also `Failed` in the map).
    refused: BTreeSet<String>,
}

impl GateActor {
    async fn run(mut self) {
        while let Some(msg) = self.rx.recv().await {
            let (facts, rx) = (&mut self.facts, &mut self.rx);
            let mut previous = None;
            // One change of the view per burst, under the channel's lock, so that readers
            // see a status and a map that belong together.
            self.view.send_if_modified(|view| {
                let certificates = &mut view.certificates;
                let mut changed = facts.apply(certificates, msg);
                // Apply whatever queued up meanwhile, then publish once: with thousands of
                // certificates, events arrive in bursts.
                while let Ok(next) = rx.try_recv() {
                    changed |= facts.apply(certificates, next);
                }
                // Every successful poll reports `installed` again; nothing to publish then.
                if !changed {
                    return false;
                }
                let (status, settled) = facts.status(certificates);
                previous = Some(std::mem::replace(&mut view.status, status));
                view.settled = settled;
                true
            });
            // The view first: whoever sees the sink's report (a log line, systemd) and then
            // asks the gate (`/readyz`) must find the same status.
            if let Some(previous) = previous {
                let status = self.view.borrow().status.clone();
                if previous != status {
                    self.sink.report(&status);
                }
            }
        }
    }
}

type Certificates = Arc<BTreeMap<String, FirstSync>>;

impl Facts {
    /// Set `id`'s state; returns whether it changed.
    fn set(&mut self, certificates: &mut Certificates, id: String, state: FirstSync) -> bool {
        if certificates.get(&id) == Some(&state) {
            return false;
        }
        self.tally.add(&state, 1);
        if let Some(old) = Arc::make_mut(certificates).insert(id, state) {
            self.tally.add(&old, -1);
        }
        true
    }

    /// Apply one fact; returns whether the view changed.
    fn apply(&mut self, certificates: &mut Certificates, msg: Msg) -> bool {
        match msg {
            Msg::Track(id) => {
                if certificates.contains_key(&id) {
                    return false;
                }
                self.set(certificates, id, FirstSync::Pending)
            }
            Msg::Installed(id) => self.set(certificates, id, FirstSync::Installed),
            Msg::Failed(id, why) => {
                // A certificate that was installed once stays installed for the gate.
                if certificates.get(&id) == Some(&FirstSync::Installed) {
                    return false;
                }
                self.set(certificates, id, FirstSync::Failed(why))
            }
            Msg::Refused(id, why) => {
                let new = self.refused.insert(id.clone());
                self.set(certificates, id, FirstSync::Failed(why)) | new
            }
            Msg::Forget(id) => {
                self.refused.remove(&id);
                match Arc::make_mut(certificates).remove(&id) {
                    Some(old) => {
                        self.tally.add(&old, -1);
                        true
                    }
                    None => false,
                }
            }
            Msg::PollingStarted => !std::mem::replace(&mut self.polling_started, true),
        }
    }

    /// The status for `certificates`, and whether every certificate is settled.
    fn status(&mut self, certificates: &BTreeMap<String, FirstSync>) -> (Status, bool) {
        let total = certificates.len();
        let installed = self.tally.installed;
        let failed_count = self.tally.failed;
        let settled = self.tally.pending == 0;

        let mut status = if !self.refused.is_empty() && settled && self.polling_started {
            // Listed first: the settings need fixing, whatever else happens.
            let list: Vec<String> = self
                .refused
                .iter()
                .filter_map(|id| match certificates.get(id) {
                    Some(FirstSync::Failed(why)) => Some(format!("{id}: {why}")),
                    _ => None,
                })
                .chain(
                    failures(certificates)
                        .filter(|(id, _)| !self.refused.contains(*id))
                        .map(|(id, why)| format!("{id}: {why}")),
                )
                .take(LISTED_FAILURES)
                .collect();
            Status::new(
                State::Error,
                format!(
                    "{} of {total} certificate(s) refused by the settings ({failed_count} failed in all, {installed} installed): {}",
                    self.refused.len(),
                    list.join("; ")
                ),
            )
        } else if !self.require_initial_sync {
            if self.polling_started {
                Status::new(
                    State::Success,
                    format!("polling {total} observed certificate(s)"),
                )
            } else {
                Status::new(State::Transitioning, "starting")
            }
        } else if installed == total && self.polling_started {
            self.reached_success = true;
            Status::new(
                State::Success,
                format!("initial sync done: {installed} of {total} certificate(s) installed"),
            )
        } else if self.reached_success {
            // Certificates added after readiness do not take readiness back.
            Status::new(
                State::Success,
                format!("{installed} of {total} certificate(s) installed"),
            )
        } else if settled && failed_count > 0 {
            let list: Vec<String> = failures(certificates)
                .take(LISTED_FAILURES)
                .map(|(id, why)| format!("{id}: {why}"))
                .collect();
            Status::new(
                State::Error,
                format!(
                    "initial sync failed for {failed_count} of {total} certificate(s): {}",
                    list.join("; ")
                ),
            )
        } else {
            Status::new(
                State::Transitioning,
                format!(
                    "initial sync: {installed} of {total} certificate(s) installed, {failed_count} failed so far"
                ),
            )
        };
        // Whatever the state, the certificates that failed are listed (the VM agent's
        // `substatus`): a fleet's instance view then says which and why.
        if failed_count > 0 {
            status.failed_count = failed_count;
            status.failures = failures(certificates)
                .take(LISTED_FAILURES)
                .map(|(id, why)| Failure {
                    id: id.clone(),
                    why: why.clone(),
                })
                .collect();
        }
        (status, settled)
    }
}

/// The failed certificates of `certificates`, in id order.
fn failures(
    certificates: &BTreeMap<String, FirstSync>,
) -> impl Iterator<Item = (&String, &String)> {
    certificates.iter().filter_map(|(id, s)| match s {
        FirstSync::Failed(why) => Some((id, why)),
        _ => None,
    })
}

/// Handle to the gate actor.
#[derive(Clone)]
pub struct GateHandle {
    tx: mpsc::UnboundedSender<Msg>,
    view: watch::Receiver<GateView>,
}

impl GateHandle {
    pub fn spawn(require_initial_sync: bool, sink: Arc<dyn StatusSink>) -> Self {
        let initial = GateView {
            status: Status::new(State::Transitioning, "starting"),
            settled: true,
            certificates: Arc::default(),
        };
        sink.report(&initial.status);
        let (view_tx, view) = watch::channel(initial);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(
            GateActor {
                sink,
                rx,
                view: view_tx,
                facts: Facts {
                    require_initial_sync,
                    polling_started: false,
                    tally: Tally::default(),
                    reached_success: false,
                    refused: BTreeSet::new(),
                },
            }
            .run(),
        );
        GateHandle { tx, view }
    }

    pub fn track(&self, id: &str) {
        let _ = self.tx.send(Msg::Track(id.to_owned()));
    }
    /// `id` is installed. Final until `forget`: a later `failed` does not undo it, so a
    /// watcher need say it only once.
    pub fn installed(&self, id: &str) {
        let _ = self.tx.send(Msg::Installed(id.to_owned()));
    }
    pub fn failed(&self, id: &str, why: &str) {
        let _ = self.tx.send(Msg::Failed(id.to_owned(), why.to_owned()));
    }
    /// `id` was refused by the settings (`why` names the mistake): failed until forgotten,
    /// and the status is `error` once the others are settled.
    pub fn refused(&self, id: &str, why: &str) {
        let _ = self.tx.send(Msg::Refused(id.to_owned(), why.to_owned()));
    }
    pub fn forget(&self, id: &str) {
        let _ = self.tx.send(Msg::Forget(id.to_owned()));
    }
    pub fn polling_started(&self) {
        let _ = self.tx.send(Msg::PollingStarted);
    }

    /// The current view.
    pub fn view(&self) -> GateView {
        self.view.borrow().clone()
    }

    /// A receiver that changes with every published view (readiness, `/readyz`, tests).
    pub fn subscribe(&self) -> watch::Receiver<GateView> {
        self.view.clone()
    }

    /// Wait until the status leaves `transitioning`, and return it.
    pub async fn settled_status(&self) -> Status {
        let mut rx = self.view.clone();
        let view = rx
            .wait_for(|v| v.status.state != State::Transitioning)
            .await
            .map(|v| v.clone());
        match view {
            Ok(v) => v.status,
            Err(_) => self.view().status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Status>>);
    impl StatusSink for Recorder {
        fn report(&self, status: &Status) {
            self.0.lock().unwrap().push(status.clone());
        }
    }

    fn states(r: &Recorder) -> Vec<State> {
        r.0.lock()
            .unwrap()
            .iter()
            .map(|s| s.state.clone())
            .collect()
    }

    #[tokio::test]
    async fn without_required_sync_success_comes_when_polling_starts() {
        let rec = Arc::new(Recorder::default());
        let gate = GateHandle::spawn(false, rec.clone());
        gate.track("a");
        gate.polling_started();
        assert_eq!(gate.settled_status().await.state, State::Success);
        assert_eq!(states(&rec), [State::Transitioning, State::Success]);
    }

    #[tokio::test]
    async fn a_refused_certificate_makes_the_status_error_naming_it_once_the_others_are_done() {
        for require_initial_sync in [false, true] {
            let rec = Arc::new(Recorder::default());
            let gate = GateHandle::spawn(require_initial_sync, rec.clone());
            gate.track("v/a in /s");
            gate.refused(
                "secretsManagementSettings.observedCertificates[1]",
                "url: found http; expected https",
            );
            gate.polling_started();
            let mut rx = gate.subscribe();
            rx.wait_for(|v| v.certificates.len() == 2).await.unwrap();
            // v/a still pending: not an error yet.
            assert_ne!(gate.view().status.state, State::Error);
            gate.installed("v/a in /s");
            let status = rx
                .wait_for(|v| v.status.state == State::Error)
                .await
                .unwrap()
                .status
                .clone();
            assert!(
                status
                    .message
                    .contains("observedCertificates[1]: url: found http"),
                "{}",
                status.message
            );
            assert_eq!(status.failed_count, 1);
            assert_eq!(
                status.failures[0].id,
                "secretsManagementSettings.observedCertificates[1]"
            );
            // Settings without the mistake (a reload forgets the refused entry): success.
            gate.forget("secretsManagementSettings.observedCertificates[1]");
            rx.wait_for(|v| v.status.state == State::Success)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn required_sync_waits_for_every_certificate() {
        let rec = Arc::new(Recorder::default());
        let gate = GateHandle::spawn(true, rec.clone());
        gate.track("a");
        gate.track("b");
        gate.polling_started();
        gate.installed("a");
        let mut rx = gate.subscribe();
        rx.wait_for(|v| v.certificates.get("a") == Some(&FirstSync::Installed))
            .await
            .unwrap();
        assert_eq!(gate.view().status.state, State::Transitioning);
        gate.installed("b");
        let status = gate.settled_status().await;
        assert_eq!(status.state, State::Success);
        assert!(status.message.contains("2 of 2"));
    }

    #[tokio::test]
    async fn required_sync_reports_error_naming_what_failed_once_all_settled() {
        let rec = Arc::new(Recorder::default());
        let gate = GateHandle::spawn(true, rec.clone());
        gate.track("v.a");
        gate.track("v.b");
        gate.polling_started();
        gate.failed("v.a", "403 Forbidden: the identity lacks get permission");
        let mut rx = gate.subscribe();
        rx.wait_for(|v| matches!(v.certificates.get("v.a"), Some(FirstSync::Failed(_))))
            .await
            .unwrap();
        // v.b still pending: not settled, still transitioning.
        assert_eq!(gate.view().status.state, State::Transitioning);
        gate.installed("v.b");
        let status = gate.settled_status().await;
        assert_eq!(status.state, State::Error);
        assert!(status.message.contains("v.a: 403 Forbidden"));
        assert!(!status.message.contains("v.b:"));
        // The failed certificate installs later: success.
        gate.installed("v.a");
        rx.wait_for(|v| v.status.state == State::Success)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_status_lists_each_failed_certificate_and_why() {
        let rec = Arc::new(Recorder::default());
        let gate = GateHandle::spawn(true, rec.clone());
        for id in ["v.a", "v.b", "v.c"] {
            gate.track(id);
        }
        gate.polling_started();
        gate.failed("v.a", "403 Forbidden");
        gate.failed("v.c", "404 SecretNotFound");
        gate.installed("v.b");
        let status = gate.settled_status().await;
        assert_eq!(status.state, State::Error);
        assert_eq!(status.failed_count, 2);
        assert_eq!(
            status.failures,
            [
                Failure {
                    id: "v.a".into(),
                    why: "403 Forbidden".into()
                },
                Failure {
                    id: "v.c".into(),
                    why: "404 SecretNotFound".into()
                }
            ]
        );
    }

    #[tokio::test]
    async fn the_listed_failures_are_capped() {
        let rec = Arc::new(Recorder::default());
        let gate = GateHandle::spawn(true, rec.clone());
        let n = LISTED_FAILURES + 7;
        for i in 0..n {
            gate.track(&format!("v.{i:04}"));
        }
        gate.polling_started();
        for i in 0..n {
            gate.failed(&format!("v.{i:04}"), "404");
        }
        let status = gate.settled_status().await;
        assert_eq!(status.failed_count, n);
        assert_eq!(status.failures.len(), LISTED_FAILURES);
    }
}
