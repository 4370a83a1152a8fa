//! Fleet simulation (issue 10): 1,000 agents × 20 certificates, each agent with the real
//! reconciler (supervisor, watchers, token, writer, gate, polling and jitter code), against
//! one simulated vault that allows 4,000 requests per 10 s and answers 429 past that.
//! Three polling intervals are compressed with tokio's paused clock. Run:
//!
//! ```text
//! cargo bench -p akv-sync-actors --bench fleet
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync_actors::*;
use akv_sync_config::*;
use tokio::time::Instant;

const AGENTS: usize = 1_000;
const CERTS: usize = 20;
const LIMIT_PER_10S: u32 = 4_000;
const INTERVAL: Duration = Duration::from_secs(3600);

struct Vault {
    start: Instant,
    window: Mutex<(u64, u32)>,
    requests: AtomicU64,
    throttled_start: AtomicU64,
    throttled_polling: AtomicU64,
    peak_per_10s: AtomicU64,
}

impl SecretSource for Vault {
    async fn get(
        &self,
        _url: &CertificateUrl,
        _t: &Token,
        _installed: Option<&str>,
    ) -> Result<Fetched, SourceError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let elapsed = self.start.elapsed();
        let window = elapsed.as_secs() / 10;
        let over = {
            let mut w = self.window.lock().unwrap();
            if w.0 != window {
                *w = (window, 0);
            }
            w.1 += 1;
            self.peak_per_10s
                .fetch_max(u64::from(w.1), Ordering::Relaxed);
            w.1 > LIMIT_PER_10S
        };
        if over {
            if elapsed < INTERVAL / 2 {
                self.throttled_start.fetch_add(1, Ordering::Relaxed);
            } else {
                self.throttled_polling.fetch_add(1, Ordering::Relaxed);
            }
            return Err(SourceError::new(
                ErrorClass::Throttled { retry_after: None },
                "429",
            ));
        }
        Ok(Fetched::New(SecretBundle {
            value: String::new().into(),
            content_type: "application/x-pem-file".into(),
            version: "v1".into(),
            enabled: true,
        }))
    }
}

struct Imds;
impl TokenSource for Imds {
    async fn fetch(&self, _a: &str) -> Result<FetchedToken, SourceError> {
        Ok(FetchedToken {
            secret: "t".into(),
            expires_in: Duration::from_secs(86_400),
        })
    }
}

#[derive(Default)]
struct Store(Mutex<HashMap<String, String>>);
impl Installer for Store {
    type Prepared = ();
    fn prepare(&self, _c: &ObservedCertificate, _s: SecretBundle) -> Result<(), InstallError> {
        Ok(())
    }
    fn install(
        &self,
        c: &ObservedCertificate,
        v: &str,
        _p: (),
    ) -> Result<InstallReport, InstallError> {
        let old = self
            .0
            .lock()
            .unwrap()
            .insert(c.url.name.clone(), v.to_owned());
        Ok(if old.as_deref() == Some(v) {
            InstallReport::Unchanged
        } else {
            InstallReport::Installed {
                previous_version: old,
            }
        })
    }
    fn installed_version(&self, c: &ObservedCertificate) -> Result<Option<String>, InstallError> {
        Ok(self.0.lock().unwrap().get(&c.url.name).cloned())
    }
}

struct Quiet;
impl StatusSink for Quiet {
    fn report(&self, _s: &Status) {}
}

fn settings(agent: usize, jitter: f64) -> Settings {
    let certificates = (0..CERTS)
        .map(|i| {
            let host = "fleetvault.vault.azure.net".to_owned();
            ObservedCertificate {
                json_path: String::new(),
                url: CertificateUrl {
                    original: String::new(),
                    vault: "fleetvault".into(),
                    host,
                    port: None,
                    cloud: Cloud::Public,
                    name: format!("a{agent}c{i}"),
                    version: None,
                },
                store: PathBuf::from("/unused"),
                link_name: None,
                acls: vec![],
                outputs: ExtraOutputs::default(),
                hook: None,
            }
        })
        .collect();
    Settings {
        wrapper: Wrapper::Bare,
        schema: Schema::V3,
        polling_interval: INTERVAL,
        require_initial_sync: false,
        acl_enabled: false,
        certificates,
        identity: Identity::SystemAssigned {
            endpoint: String::new(),
        },
        logging: None,
        agent: AgentSettings {
            jitter,
            ..AgentSettings::default()
        },
    }
}

struct Outcome {
    requests: u64,
    throttled_start: u64,
    throttled_polling: u64,
    peak: u64,
}

async fn simulate(jitter: f64) -> Outcome {
    let vault = Arc::new(Vault {
        start: Instant::now(),
        window: Mutex::new((0, 0)),
        requests: AtomicU64::new(0),
        throttled_start: AtomicU64::new(0),
        throttled_polling: AtomicU64::new(0),
        peak_per_10s: AtomicU64::new(0),
    });
    let mut agents = Vec::with_capacity(AGENTS);
    for a in 0..AGENTS {
        let ports = Ports {
            tokens: Arc::new(Imds),
            secrets: vault.clone(),
            installer: Arc::new(Store::default()),
            status: Arc::new(Quiet),
            observer: Arc::new(NoObserver),
        };
        agents.push(Agent::start(&settings(a, jitter), ports));
    }
    // Start-up, then three polling intervals (and the jitter's reach past the third).
    tokio::time::sleep(INTERVAL * 3 + INTERVAL / 2).await;
    for agent in agents {
        agent.shutdown().await;
    }
    Outcome {
        requests: vault.requests.load(Ordering::Relaxed),
        throttled_start: vault.throttled_start.load(Ordering::Relaxed),
        throttled_polling: vault.throttled_polling.load(Ordering::Relaxed),
        peak: vault.peak_per_10s.load(Ordering::Relaxed),
    }
}

fn main() {
    println!(
        "fleet: {AGENTS} agents x {CERTS} certificates, one vault limited to {LIMIT_PER_10S} requests / 10 s, \
         polling every {} s, 3 intervals (paused clock)",
        INTERVAL.as_secs()
    );
    println!(
        "| polling jitter | requests | 429 at start-up | 429 while polling | peak requests / 10 s | wall time |"
    );
    println!("|---|---|---|---|---|---|");
    for jitter in [0.0, 0.1] {
        let wall = std::time::Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let o = rt.block_on(simulate(jitter));
        println!(
            "| {} | {} | {} | {} | {} | {:.1} s |",
            if jitter == 0.0 {
                "none".to_owned()
            } else {
                format!("±{:.0} %", jitter * 100.0)
            },
            o.requests,
            o.throttled_start,
            o.throttled_polling,
            o.peak,
            wall.elapsed().as_secs_f64()
        );
    }
}
