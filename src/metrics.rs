//! Metrics (Prometheus text format) and health endpoints, on an opt-in loopback address
//! (`akvSyncSettings.metricsAddress`).
//!
//! - `/metrics`: per certificate the installed version's expiry, the last successful check,
//!   consecutive failures, installs; requests to Key Vault and to the identity service by
//!   status; token refreshes; hook runs and failures; dropped log records; readiness.
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 once the initial sync is done (the gate says `success`) and no certificate
//!   is stale — its last successful check older than two polling intervals; else 503 with why.
//!
//! Also raises expiry warnings: when a check finds the installed version current (Key Vault
//! has nothing newer) and it expires within the configured number of days.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use akv_sync_actors::{CheckOutcome, GateHandle, Installed, Observer, State};
use akv_sync_config::ObservedCertificate;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::hook::Hooks;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    vault: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    target: String,
    host: String,
    status: String,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Everything `/metrics` shows, and the staleness `/readyz` needs.
pub struct Metrics {
    registry: Registry,
    expiry: Family<CertLabels, Gauge>,
    last_success: Family<CertLabels, Gauge>,
    failures: Family<CertLabels, Gauge>,
    expiring: Family<CertLabels, Gauge>,
    installs: Family<CertLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    token_refreshes: Counter,
    hook_runs: Counter,
    hook_failures: Counter,
    log_dropped: Counter,
    ready: Gauge,
    expiry_cache: Mutex<HashMap<(PathBuf, String), Option<i64>>>,
    last_success_at: Mutex<HashMap<CertLabels, i64>>,
    expiry_warning_days: u32,
    /// (certificate, version) already warned about, so that each is logged once.
    warned: Mutex<std::collections::HashSet<(CertLabels, String)>>,
    hooks: Mutex<Option<Hooks>>,
    hook_seen: (AtomicU64, AtomicU64),
    hook_base: (AtomicU64, AtomicU64),
    log_queue: Mutex<Option<Arc<crate::fluentd::Queue>>>,
    log_seen: AtomicU64,
}

impl Metrics {
    pub fn new(expiry_warning_days: u32) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            expiry: Family::default(),
            last_success: Family::default(),
            failures: Family::default(),
            expiring: Family::default(),
            installs: Family::default(),
            requests: Family::default(),
            token_refreshes: Counter::default(),
            hook_runs: Counter::default(),
            hook_failures: Counter::default(),
            log_dropped: Counter::default(),
            ready: Gauge::default(),
            expiry_cache: Mutex::new(HashMap::new()),
            last_success_at: Mutex::new(HashMap::new()),
            expiry_warning_days,
            warned: Mutex::new(std::collections::HashSet::new()),
            hooks: Mutex::new(None),
            hook_seen: (AtomicU64::new(0), AtomicU64::new(0)),
            hook_base: (AtomicU64::new(0), AtomicU64::new(0)),
            log_queue: Mutex::new(None),
            log_seen: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "akv_sync_certificate_expiry_timestamp_seconds",
            "Expiry (notAfter) of the installed version, unix seconds",
            m.expiry.clone(),
        );
        registry.register(
            "akv_sync_certificate_last_success_timestamp_seconds",
            "Last successful check of the certificate, unix seconds",
            m.last_success.clone(),
        );
        registry.register(
            "akv_sync_certificate_consecutive_failures",
            "Checks failed in a row",
            m.failures.clone(),
        );
        registry.register(
            "akv_sync_certificate_expiring",
            "1 when the installed version expires within the warning window and Key Vault has no newer one",
            m.expiring.clone(),
        );
        registry.register(
            "akv_sync_certificate_installs",
            "New versions installed",
            m.installs.clone(),
        );
        registry.register(
            "akv_sync_requests",
            "Requests to Key Vault (target=vault) and the identity service (target=identity) by HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "akv_sync_token_refreshes",
            "Tokens fetched from the identity service",
            m.token_refreshes.clone(),
        );
        registry.register("akv_sync_hook_runs", "Hook runs", m.hook_runs.clone());
        registry.register(
            "akv_sync_hook_failures",
            "Hook runs that failed or timed out",
            m.hook_failures.clone(),
        );
        registry.register(
            "akv_sync_log_records_dropped",
            "Log records dropped because the Fluentd buffer was full",
            m.log_dropped.clone(),
        );
        registry.register(
            "akv_sync_ready",
            "1 once the initial sync is done",
            m.ready.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Send installed batches to this hook actor, and take its counts at every scrape.
    pub fn watch_hooks(&self, hooks: Hooks) {
        let mut h = self.hooks.lock().expect("hooks lock");
        // Counts restart with a new hook actor; keep the running totals monotonic.
        if let Some(old) = h.take() {
            self.hook_base
                .0
                .fetch_add(old.counters.runs.load(Ordering::Relaxed), Ordering::Relaxed);
            self.hook_base.1.fetch_add(
                old.counters.failures.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        *h = Some(hooks);
    }

    /// Drop the hook actor's handle so that it ends once its queue is done.
    pub fn stop_hooks(&self) {
        let mut h = self.hooks.lock().expect("hooks lock");
        if let Some(old) = h.take() {
            self.hook_base
                .0
                .fetch_add(old.counters.runs.load(Ordering::Relaxed), Ordering::Relaxed);
            self.hook_base.1.fetch_add(
                old.counters.failures.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
    }

    /// Count a request: `target` is `vault` or `identity`, `status` an HTTP status or `error`.
    pub fn request(&self, target: &str, host: &str, status: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                target: target.into(),
                host: host.to_ascii_lowercase(),
                status: status.into(),
            })
            .inc();
    }

    /// Take the dropped-records count from this Fluentd queue at every scrape.
    pub fn watch_log_queue(&self, queue: Arc<crate::fluentd::Queue>) {
        *self.log_queue.lock().expect("log queue lock") = Some(queue);
    }

    /// Expiry of a version file, read once per version.
    fn file_expiry(&self, store: &Path, file: &str, version: &str) -> Option<i64> {
        let key = (store.join(file), version.to_owned());
        let mut cache = self.expiry_cache.lock().expect("expiry cache lock");
        if let Some(v) = cache.get(&key) {
            return *v;
        }
        let v = crate::pemfile::leaf_not_after(&key.0);
        cache.insert(key, v);
        v
    }

    /// Render `/metrics`.
    pub fn render(&self, ready: bool) -> String {
        self.ready.set(i64::from(ready));
        if let Some(h) = self.hooks.lock().expect("hooks lock").as_ref() {
            sync_counter(
                &self.hook_runs,
                &self.hook_seen.0,
                h.counters.runs.load(Ordering::Relaxed),
            );
            sync_counter(
                &self.hook_failures,
                &self.hook_seen.1,
                h.counters.failures.load(Ordering::Relaxed),
            );
        }
        if let Some(q) = self.log_queue.lock().expect("log queue lock").as_ref() {
            sync_counter(
                &self.log_dropped,
                &self.log_seen,
                q.dropped.load(Ordering::Relaxed),
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding to a String");
        out
    }

    /// Certificates whose last success is older than `max_age` (never succeeded counts).
    pub fn stale(&self, certificates: &[String], max_age: Duration) -> Vec<String> {
        let last = self.last_success_at.lock().expect("last success lock");
        let limit = now_unix().saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        certificates
            .iter()
            .filter(|id| {
                let (vault, name) = id.split_once('/').unwrap_or((id, ""));
                last.get(&CertLabels {
                    vault: vault.into(),
                    name: name.into(),
                })
                .is_none_or(|t| *t < limit)
            })
            .cloned()
            .collect()
    }
}

/// Bring a prometheus counter up to an external running total.
fn sync_counter(counter: &Counter, seen: &AtomicU64, total: u64) {
    let before = seen.swap(total, Ordering::Relaxed);
    if total > before {
        counter.inc_by(total - before);
    }
}

impl Observer for Metrics {
    fn checked(&self, cert: &ObservedCertificate, outcome: &CheckOutcome) {
        let labels = CertLabels {
            vault: cert.url.vault.clone(),
            name: cert.url.name.clone(),
        };
        match outcome {
            CheckOutcome::Current { version } | CheckOutcome::Updated { version, .. } => {
                let now = now_unix();
                self.last_success.get_or_create(&labels).set(now);
                self.failures.get_or_create(&labels).set(0);
                self.last_success_at
                    .lock()
                    .expect("last success lock")
                    .insert(labels.clone(), now);
                let file = format!("{}.{version}", cert.url.stem());
                if let Some(not_after) = self.file_expiry(&cert.store, &file, version) {
                    self.expiry.get_or_create(&labels).set(not_after);
                    let window = i64::from(self.expiry_warning_days) * 86_400;
                    // Both outcomes mean the installed version is Key Vault's newest.
                    let expiring = not_after - now < window;
                    self.expiring
                        .get_or_create(&labels)
                        .set(i64::from(expiring));
                    // Each (certificate, version) is warned about once.
                    let first_time = expiring
                        && self
                            .warned
                            .lock()
                            .expect("warned lock")
                            .insert((labels.clone(), version.clone()));
                    if first_time {
                        tracing::warn!(vault = %cert.url.vault, name = %cert.url.name, version = %version,
                            days_left = (not_after - now) / 86_400,
                            "certificate expires within {} days and Key Vault has no newer version: renew it in Key Vault",
                            self.expiry_warning_days);
                    }
                }
            }
            CheckOutcome::Failed { consecutive, .. } => {
                self.failures
                    .get_or_create(&labels)
                    .set(i64::from(*consecutive));
            }
        }
    }

    fn token_refreshed(&self) {
        self.token_refreshes.inc();
    }

    fn installed_batch(&self, batch: &[Installed]) {
        for i in batch {
            self.installs
                .get_or_create(&CertLabels {
                    vault: i.cert.url.vault.clone(),
                    name: i.cert.url.name.clone(),
                })
                .inc();
        }
        if let Some(h) = self.hooks.lock().expect("hooks lock").as_ref() {
            h.changed(batch);
        }
    }
}

/// `/readyz`'s verdict.
pub fn readiness(
    gate: &GateHandle,
    metrics: &Metrics,
    polling_interval: Duration,
) -> Result<(), String> {
    let view = gate.view();
    if view.status.state != State::Success {
        return Err(format!("not ready: {}", view.status.message));
    }
    let ids: Vec<String> = view.certificates.keys().cloned().collect();
    let stale = metrics.stale(&ids, polling_interval.saturating_mul(2));
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not ready: no successful check for over two polling intervals: {}",
            stale.join(", ")
        ))
    }
}

/// Decides `/readyz`: `Ok` when ready, else why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send a request's header (also between requests of a connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, whatever it does (a scrape takes milliseconds).
pub const CONNECTION_MAX_AGE: Duration = Duration::from_secs(60);

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
///
/// Any local user can connect, so a connection must not be able to hold a descriptor for
/// long: at most [`MAX_CONNECTIONS`] at once (more are closed at once), each closed if its
/// request header is not in within [`HEADER_READ_TIMEOUT`], and after [`CONNECTION_MAX_AGE`]
/// in any case. HTTP/1.1 only.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let app = router(metrics, ready);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reap ended connections as we go.
            Some(_) = connections.join_next() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept): not fatal; a
                // short pause keeps a full table from spinning this loop.
                tracing::debug!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_MAX_AGE, conn).await;
        });
    }
    connections.shutdown().await;
    Ok(())
}

fn router(metrics: Arc<Metrics>, ready: Readiness) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let r = ready.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = r.clone();
                async move {
                    match r() {
                        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (m, r) = (metrics.clone(), ready.clone());
                async move {
                    // Rendering may read installed files (expiry): off the async threads.
                    let text = tokio::task::spawn_blocking(move || m.render(r().is_ok()))
                        .await
                        .unwrap_or_default();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
}
