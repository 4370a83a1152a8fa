//! What watches the reconciler: metrics and the health endpoints ([`metrics`], [`http`]),
//! reload hooks ([`hook`]) and expiry warnings ([`expiry`]).
//!
//! The reconciler tells one [`akv_sync_actors::Observer`] what happens; [`Fanout`] is that
//! observer and hands each event to whoever needs it. The commands hold an [`Observability`]
//! and never touch the parts: only this folder knows `Metrics`.

pub mod expiry;
pub mod hook;
pub mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync_actors::{CheckOutcome, GateHandle, NewVersion, Observer};
use akv_sync_config::{HookSpec, ObservedCertificate};
use tokio_util::sync::CancellationToken;

use crate::azure::RequestObserver;
use crate::log::fluentd::Queue;
use expiry::Expiry;
use hook::{HookCounters, Hooks};
use metrics::Metrics;

/// The reconciler's observer: metrics, expiry and hooks, each told what it needs.
pub struct Fanout {
    metrics: Arc<Metrics>,
    expiry: Arc<Expiry>,
    hooks: Mutex<Option<Hooks>>,
}

impl Observer for Fanout {
    fn checked(&self, cert: &ObservedCertificate, outcome: &CheckOutcome) {
        self.metrics.checked(cert, outcome);
        match outcome {
            // Both mean the installed version is Key Vault's newest.
            CheckOutcome::Current { version } | CheckOutcome::Updated { version, .. } => {
                self.expiry
                    .current(&Arc::new(cert.clone()), version, &self.metrics);
            }
            CheckOutcome::Failed { .. } => {}
        }
    }

    fn token_refreshed(&self) {
        self.metrics.token_refreshed();
    }

    fn installed_batch(&self, batch: &[NewVersion]) {
        self.metrics.installed_batch(batch);
        if let Some(h) = self.hooks.lock().expect("hooks lock").as_ref() {
            h.changed(batch);
        }
    }
}

/// What the daemon keeps of observation across settings reloads.
pub struct Observability {
    fanout: Arc<Fanout>,
    hook_counters: Arc<HookCounters>,
}

impl Observability {
    /// Metrics and expiry warnings (`expiry_warning_days`); hooks start with [`Self::start_hooks`].
    pub fn new(expiry_warning_days: u32) -> Self {
        let hook_counters = Arc::new(HookCounters::default());
        Observability {
            fanout: Arc::new(Fanout {
                metrics: Arc::new(Metrics::new(hook_counters.clone())),
                expiry: Arc::new(Expiry::new(expiry_warning_days)),
                hooks: Mutex::new(None),
            }),
            hook_counters,
        }
    }

    /// Count the records this Fluentd queue drops.
    pub fn watch_log_queue(&self, queue: Arc<Queue>) {
        self.fanout.metrics.watch_log_queue(queue);
    }

    /// The reconciler's observer.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.fanout.clone()
    }

    /// What the Azure clients report their requests to.
    pub fn requests(&self) -> Arc<dyn RequestObserver> {
        self.fanout.metrics.clone()
    }

    /// Start a hook actor (with the agent-wide hook `global`) and send it installed batches.
    pub fn start_hooks(&self, global: Option<HookSpec>) -> tokio::task::JoinHandle<()> {
        let (hooks, done) = Hooks::spawn(global, self.hook_counters.clone());
        *self.fanout.hooks.lock().expect("hooks lock") = Some(hooks);
        done
    }

    /// Drop the hook actor's handle so that it ends once its queue is done.
    pub fn stop_hooks(&self) {
        self.fanout.hooks.lock().expect("hooks lock").take();
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` on `addr` until `shutdown`; readiness from
    /// the gate in `gate` (swapped on a restart of the agent).
    pub async fn serve(
        &self,
        addr: SocketAddr,
        gate: Arc<Mutex<GateHandle>>,
        polling_interval: Duration,
        shutdown: CancellationToken,
    ) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
        let m = self.fanout.metrics.clone();
        let ready: http::Readiness = Arc::new(move || {
            let gate = gate.lock().expect("gate lock").clone();
            http::readiness(&gate, &m, polling_interval)
        });
        let metrics = self.fanout.metrics.clone();
        // An address in use (or refused) must not stop certificate syncing: keep retrying
        // with backoff, say so in the log, and serve once the address is free; `/healthz`
        // then tells how long it could not be served.
        Ok(tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            let mut unavailable = http::Unavailable::default();
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(e) => {
                        unavailable.failed(&e);
                        tracing::warn!(address = %addr, error = %e, retry_in = ?wait,
                            "metrics address unavailable; certificates keep syncing, will retry");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            };
            tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
            http::serve(listener, metrics, ready, unavailable, shutdown).await
        }))
    }
}
