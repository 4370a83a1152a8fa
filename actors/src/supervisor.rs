//! The supervisor: owns the settings, spawns one watcher per observed certificate, applies
//! reloads (SIGHUP) by starting and stopping only the watchers whose certificate was added,
//! removed or changed, and shuts everything down gracefully.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use akv_sync_config::{ObservedCertificate, Settings};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::died::Deaths;
use crate::gate::GateHandle;
use crate::limiter::Vaults;
use crate::port::{CheckOutcome, Installer, Observer, SecretSource, StatusSink, TokenSource};
use crate::token::TokenHandle;
use crate::watcher::{CheckError, Shared, Watcher, certificate_id};
use crate::writer::WriterHandle;

/// The outside world the reconciler needs.
pub struct Ports<T, S, I> {
    pub tokens: Arc<T>,
    pub secrets: Arc<S>,
    pub installer: Arc<I>,
    pub status: Arc<dyn StatusSink>,
    pub observer: Arc<dyn Observer>,
}

enum Msg {
    Reload(Box<Settings>, oneshot::Sender<ReloadSummary>),
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub kept: usize,
}

struct WatcherTask {
    cancel: CancellationToken,
}

/// What identifies a watcher across reloads: everything about the certificate except where
/// it stands in the settings (moving an entry in the list must not restart it). The map key
/// is the watcher's own copy of its settings entry, shared, not a second one.
#[derive(Clone)]
struct WatcherKey(Arc<ObservedCertificate>);

impl WatcherKey {
    /// Every field but `json_path`; naming them all makes a new field a compile error here.
    #[allow(clippy::type_complexity)]
    fn identity(
        &self,
    ) -> (
        &akv_sync_config::CertificateUrl,
        &std::path::Path,
        &Option<String>,
        &[akv_sync_config::AclGrant],
        &akv_sync_config::ExtraOutputs,
        &Option<akv_sync_config::HookSpec>,
    ) {
        let ObservedCertificate {
            json_path: _,
            url,
            store,
            link_name,
            acls,
            outputs,
            hook,
        } = &*self.0;
        (url, store, link_name, acls, outputs, hook)
    }
}

impl PartialEq for WatcherKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for WatcherKey {}

impl std::hash::Hash for WatcherKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

struct SupervisorActor<S, I: Installer> {
    shared: Arc<Shared<S, I>>,
    watchers: HashMap<WatcherKey, WatcherTask>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    rx: mpsc::Receiver<Msg>,
    deaths: Deaths,
}

impl<S: SecretSource, I: Installer> SupervisorActor<S, I> {
    fn apply(&mut self, certificates: &[ObservedCertificate]) -> ReloadSummary {
        // One copy of each entry, shared by the map and the watcher it starts; the copies of
        // entries whose watcher keeps running are dropped at the end.
        let wanted: Vec<WatcherKey> = certificates
            .iter()
            .map(|c| WatcherKey(Arc::new(c.clone())))
            .collect();
        let mut summary = ReloadSummary::default();
        // Stop what is no longer wanted (or changed: a changed entry is a new key).
        if !self.watchers.is_empty() {
            let wanted_set: HashSet<&WatcherKey> = wanted.iter().collect();
            let stale: Vec<WatcherKey> = self
                .watchers
                .keys()
                .filter(|k| !wanted_set.contains(k))
                .cloned()
                .collect();
            for key in stale {
                if let Some(running) = self.watchers.remove(&key) {
                    running.cancel.cancel();
                    let id = certificate_id(&key.0);
                    // The same id may come straight back (a changed entry): the new watcher
                    // re-tracks it.
                    self.shared.gate.forget(&id);
                    summary.stopped.push(id);
                }
            }
        }
        // In settings order, so that logs and summaries follow the file.
        self.watchers
            .reserve(wanted.len().saturating_sub(self.watchers.len()));
        for key in wanted {
            if self.watchers.contains_key(&key) {
                summary.kept += 1;
                continue;
            }
            let cancel = self.shutdown.child_token();
            let watcher = Watcher::new(key.0.clone(), self.shared.clone());
            summary.started.push(watcher.id().to_owned());
            self.shared.gate.track(watcher.id());
            let actor = format!("watcher {}", watcher.id());
            self.tracker
                .spawn(self.deaths.watched(actor, watcher.run(cancel.clone())));
            self.watchers.insert(key, WatcherTask { cancel });
        }
        summary
    }

    async fn run(mut self) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                msg = self.rx.recv() => match msg {
                    Some(Msg::Reload(settings, reply)) => {
                        let summary = self.apply(&settings.certificates);
                        info!(started = summary.started.len(), stopped = summary.stopped.len(),
                              kept = summary.kept, "settings reloaded");
                        let _ = reply.send(summary);
                    }
                    None => break,
                }
            }
        }
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Handle to a running agent.
pub struct Agent {
    tx: mpsc::Sender<Msg>,
    gate: GateHandle,
    shutdown: CancellationToken,
    supervisor: JoinHandle<()>,
    writer_done: JoinHandle<()>,
    deaths: Deaths,
}

fn shared<T: TokenSource, S: SecretSource, I: Installer>(
    settings: &Settings,
    ports: &Ports<T, S, I>,
    gate: GateHandle,
    startup_spread: std::time::Duration,
    deaths: &Deaths,
) -> (Arc<Shared<S, I>>, JoinHandle<()>) {
    let (writer, writer_done) =
        WriterHandle::spawn_watched(ports.installer.clone(), ports.observer.clone(), deaths);
    let shared = Arc::new(Shared {
        source: ports.secrets.clone(),
        installer: ports.installer.clone(),
        tokens: TokenHandle::spawn_watched(
            ports.tokens.clone(),
            ports.observer.clone(),
            deaths.clone(),
        ),
        writer,
        vaults: Arc::new(Vaults::new(settings.agent.max_concurrency_per_vault)),
        gate,
        observer: ports.observer.clone(),
        polling_interval: settings.polling_interval,
        jitter: settings.agent.jitter,
        startup_spread,
        first_sync_attempts: crate::watcher::first_sync_attempts(
            settings.schema,
            settings.require_initial_sync,
        ),
        pipeline: tokio::sync::Semaphore::new(crate::watcher::PIPELINE_DEPTH),
        checks: tokio::sync::Semaphore::new(crate::watcher::CHECKS_IN_FLIGHT),
    });
    (shared, writer_done)
}

impl Agent {
    /// Start the agent: one watcher per observed certificate.
    pub fn start<T: TokenSource, S: SecretSource, I: Installer>(
        settings: &Settings,
        ports: Ports<T, S, I>,
    ) -> Agent {
        Agent::start_refusing(settings, ports, &[])
    }

    /// [`Agent::start`], with the certificates the settings refused (`(id, why)`: a mistake
    /// in their own entry) reported as failed from the start, so that the status never
    /// claims success while they are missing.
    pub fn start_refusing<T: TokenSource, S: SecretSource, I: Installer>(
        settings: &Settings,
        ports: Ports<T, S, I>,
        refused: &[(String, String)],
    ) -> Agent {
        let gate = GateHandle::spawn(settings.require_initial_sync, ports.status.clone());
        let spread = crate::watcher::startup_spread(
            settings.require_initial_sync,
            settings.polling_interval,
            settings.agent.jitter,
        );
        let deaths = Deaths::default();
        let (shared, writer_done) = shared(settings, &ports, gate.clone(), spread, &deaths);
        let shutdown = CancellationToken::new();
        let (tx, rx) = mpsc::channel(4);
        let mut actor = SupervisorActor {
            shared,
            watchers: HashMap::new(),
            tracker: TaskTracker::new(),
            shutdown: shutdown.clone(),
            rx,
            deaths: deaths.clone(),
        };
        let summary = actor.apply(&settings.certificates);
        info!(
            certificates = summary.started.len(),
            "polling started for every observed certificate"
        );
        for (id, why) in refused {
            gate.refused(id, why);
        }
        gate.polling_started();
        // Only the watchers hold the writer from here on, so it ends after them.
        let supervisor = tokio::spawn(actor.run());
        Agent {
            tx,
            gate,
            shutdown,
            supervisor,
            writer_done,
            deaths,
        }
    }

    /// Returns once an actor (a watcher, the token actor, the writer) has died by panicking,
    /// naming it; the agent cannot be trusted to go on, and the caller should exit non-zero.
    pub async fn died(&self) -> String {
        self.deaths.first().await
    }

    /// The initial-sync gate (status, readiness).
    pub fn gate(&self) -> &GateHandle {
        &self.gate
    }

    /// Apply new settings: start watchers for added or changed certificates, stop those of
    /// removed ones, leave the rest and the token alone.
    pub async fn reload(&self, settings: Settings) -> Option<ReloadSummary> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Reload(Box::new(settings), reply))
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Stop polling, let writes in progress finish, and return when everything has ended.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.supervisor.await;
        let _ = self.writer_done.await;
    }
}

/// The result of `once` for one certificate.
#[derive(Debug)]
pub struct OnceResult {
    pub id: String,
    pub result: Result<CheckOutcome, CheckError>,
}

/// One pass over every certificate (the `once` command): each certificate is checked and
/// installed if needed, with up to `max_attempts` tries; results come back in settings order.
pub async fn run_once<T: TokenSource, S: SecretSource, I: Installer>(
    settings: &Settings,
    ports: Ports<T, S, I>,
    max_attempts: u32,
    progress: impl Fn(&OnceResult) + Send + Sync + 'static,
) -> Vec<OnceResult> {
    let gate = GateHandle::spawn(true, ports.status.clone());
    // Someone waits for `once`: no start-up spread.
    let deaths = Deaths::default();
    let (shared, writer_done) = shared(
        settings,
        &ports,
        gate.clone(),
        std::time::Duration::ZERO,
        &deaths,
    );
    gate.polling_started();
    let cancel = CancellationToken::new();
    let progress = Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, cert) in settings.certificates.iter().enumerate() {
        let watcher = Watcher::new(Arc::new(cert.clone()), shared.clone());
        gate.track(watcher.id());
        let cancel = cancel.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let result = watcher
                .first_sync(max_attempts, &cancel)
                .await
                .expect("once is never cancelled");
            let r = OnceResult {
                id: watcher.id().to_owned(),
                result,
            };
            progress(&r);
            (index, r)
        });
    }
    drop(shared);
    let mut results: Vec<(usize, OnceResult)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            // Logged; the certificate has no result, which `once` counts as failed.
            Err(e) if e.is_panic() => deaths.report("a watcher of `once`"),
            Err(_) => {}
        }
    }
    let _ = writer_done.await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
