//! The Prometheus registry and what it counts: per certificate the installed version's expiry,
//! the last successful check, consecutive failures, installs; requests to Key Vault and to the
//! identity service by status; token refreshes; hook runs and failures; dropped log records;
//! readiness. Served by `observe::http`; fed by the fan-out observer and the Azure clients
//! (through [`crate::azure::RequestObserver`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync_actors::{CheckOutcome, NewVersion};
use akv_sync_config::ObservedCertificate;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::hook::HookCounters;
use crate::azure::{RequestObserver, RequestTarget};
use crate::clock::now_unix;
use crate::log::fluentd::Queue;

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
    /// Last success per certificate id (the gate's ids), for `/readyz`.
    last_success_at: Mutex<HashMap<String, i64>>,
    hook_counters: Arc<HookCounters>,
    hook_seen: (AtomicU64, AtomicU64),
    log_queue: Mutex<Option<Arc<Queue>>>,
    log_seen: AtomicU64,
}

impl Metrics {
    /// Metrics whose hook counts are read from `hook_counters` at every scrape.
    pub fn new(hook_counters: Arc<HookCounters>) -> Self {
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
            last_success_at: Mutex::new(HashMap::new()),
            hook_counters,
            hook_seen: (AtomicU64::new(0), AtomicU64::new(0)),
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

    /// Take the dropped-records count from this Fluentd queue at every scrape.
    pub fn watch_log_queue(&self, queue: Arc<Queue>) {
        *self.log_queue.lock().expect("log queue lock") = Some(queue);
    }

    /// A check ended.
    pub fn checked(&self, cert: &ObservedCertificate, outcome: &CheckOutcome) {
        let labels = CertLabels::of(cert);
        match outcome {
            CheckOutcome::Current { .. } | CheckOutcome::Updated { .. } => {
                let now = now_unix();
                self.last_success.get_or_create(&labels).set(now);
                self.failures.get_or_create(&labels).set(0);
                self.last_success_at
                    .lock()
                    .expect("last success lock")
                    .insert(cert.id(), now);
            }
            CheckOutcome::Failed { consecutive, .. } => {
                self.failures
                    .get_or_create(&labels)
                    .set(i64::from(*consecutive));
            }
        }
    }

    /// The installed version's expiry, and whether it is within the warning window.
    pub fn expiry(&self, cert: &ObservedCertificate, not_after: i64, expiring: bool) {
        let labels = CertLabels::of(cert);
        self.expiry.get_or_create(&labels).set(not_after);
        self.expiring
            .get_or_create(&labels)
            .set(i64::from(expiring));
    }

    pub fn token_refreshed(&self) {
        self.token_refreshes.inc();
    }

    pub fn installed_batch(&self, batch: &[NewVersion]) {
        for i in batch {
            self.installs.get_or_create(&CertLabels::of(&i.cert)).inc();
        }
    }

    /// Render `/metrics`.
    pub fn render(&self, ready: bool) -> String {
        self.ready.set(i64::from(ready));
        sync_counter(
            &self.hook_runs,
            &self.hook_seen.0,
            self.hook_counters.runs.load(Ordering::Relaxed),
        );
        sync_counter(
            &self.hook_failures,
            &self.hook_seen.1,
            self.hook_counters.failures.load(Ordering::Relaxed),
        );
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

    /// Certificates (by id) whose last success is older than `max_age` (never succeeded
    /// counts).
    pub fn stale(&self, certificates: &[String], max_age: Duration) -> Vec<String> {
        let last = self.last_success_at.lock().expect("last success lock");
        let limit = now_unix().saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        certificates
            .iter()
            .filter(|id| last.get(*id).is_none_or(|t| *t < limit))
            .cloned()
            .collect()
    }
}

impl RequestObserver for Metrics {
    fn request(&self, target: RequestTarget, host: &str, status: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                target: target.label().into(),
                host: host.to_ascii_lowercase(),
                status: status.into(),
            })
            .inc();
    }
}

/// Bring a prometheus counter up to an external running total.
fn sync_counter(counter: &Counter, seen: &AtomicU64, total: u64) {
    let before = seen.swap(total, Ordering::Relaxed);
    if total > before {
        counter.inc_by(total - before);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
        let m = Metrics::new(Default::default());
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
        let m = Metrics::new(Default::default());
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
