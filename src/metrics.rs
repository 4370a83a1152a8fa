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

/// One observed certificate: the same certificate in two stores is two series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    vault: String,
    name: String,
    store: String,
}

impl CertLabels {
    fn of(cert: &ObservedCertificate) -> Self {
        CertLabels {
            vault: cert.url.vault.clone(),
            name: cert.url.name.clone(),
            store: cert.store.display().to_string(),
        }
    }
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
    /// By certificate id ([`akv_sync_actors::certificate_id`]), as the gate names them.
    last_success_at: Mutex<HashMap<String, i64>>,
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
        let limit = now_unix() - max_age.as_secs() as i64;
        certificates
            .iter()
            .filter(|id| last.get(*id).is_none_or(|t| *t < limit))
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
        let labels = CertLabels::of(cert);
        match outcome {
            CheckOutcome::Current { version } | CheckOutcome::Updated { version, .. } => {
                let now = now_unix();
                self.last_success.get_or_create(&labels).set(now);
                self.failures.get_or_create(&labels).set(0);
                self.last_success_at
                    .lock()
                    .expect("last success lock")
                    .insert(akv_sync_actors::certificate_id(cert), now);
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
            self.installs.get_or_create(&CertLabels::of(&i.cert)).inc();
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
    let stale = metrics.stale(&ids, polling_interval * 2);
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

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let r = ready.clone();
    let app = axum::Router::new()
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
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_at(store: &str) -> ObservedCertificate {
        use akv_sync_config::{CertificateUrl, Cloud, ExtraOutputs};
        ObservedCertificate {
            json_path: "observedCertificates[0]".into(),
            url: CertificateUrl {
                original: "https://v.vault.azure.net/secrets/web".into(),
                vault: "v".into(),
                host: "v.vault.azure.net".into(),
                port: None,
                cloud: Cloud::Public,
                name: "web".into(),
                version: None,
            },
            store: PathBuf::from(store),
            link_name: None,
            acls: vec![],
            outputs: ExtraOutputs::default(),
            hook: None,
        }
    }

    #[test]
    fn one_certificate_in_two_stores_is_two_series() {
        let m = Metrics::new(30);
        let (a, b) = (cert_at("/srv/a"), cert_at("/srv/b"));
        m.checked(
            &a,
            &CheckOutcome::Failed {
                error: "404".into(),
                consecutive: 1,
            },
        );
        m.checked(
            &b,
            &CheckOutcome::Failed {
                error: "404".into(),
                consecutive: 3,
            },
        );
        let text = m.render(false);
        assert!(
            text.contains(
                r#"akv_sync_certificate_consecutive_failures{vault="v",name="web",store="/srv/a"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"akv_sync_certificate_consecutive_failures{vault="v",name="web",store="/srv/b"} 3"#
            ),
            "{text}"
        );
    }

    #[test]
    fn staleness_is_per_store() {
        let m = Metrics::new(30);
        let (a, b) = (cert_at("/srv/a"), cert_at("/srv/b"));
        m.checked(
            &a,
            &CheckOutcome::Current {
                version: "1".into(),
            },
        );
        let ids = [
            akv_sync_actors::certificate_id(&a),
            akv_sync_actors::certificate_id(&b),
        ];
        assert_eq!(
            m.stale(&ids, Duration::from_secs(3600)),
            [akv_sync_actors::certificate_id(&b)]
        );
    }
}
