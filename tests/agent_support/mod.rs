//! Shared by the agent's end-to-end tests: an emulator, a store folder, settings pointing at
//! both, and the agent's real ports (identity, Key Vault over TLS, material, store).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync::azure::net::net_for_emulator;
use akv_sync::cli::ports::{RealPorts, ports_with};
use akv_sync_actors::{Agent, CheckOutcome, NewVersion, Observer, State, Status, StatusSink};
use akv_sync_config::{ObservedCertificate, Settings};
use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use akv_sync_emulator::{Emulator, EmulatorOptions};
use tokio::sync::mpsc;

pub struct World {
    pub emulator: Emulator,
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

pub fn ec(format: Format, chain_len: u8) -> CertSpec {
    CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len,
        format,
        ..CertSpec::default()
    }
}

impl World {
    pub async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let emulator = akv_sync_emulator::start(EmulatorOptions {
            state_dir: dir.path().join("emulator"),
            arc_token_dir: dir.path().join("arc"),
            ..EmulatorOptions::default()
        })
        .await
        .unwrap();
        let store = dir.path().join("store");
        World {
            emulator,
            dir,
            store,
        }
    }

    /// Create certificates `vault/name` (EC P-256, chain of 2, alternating formats).
    pub fn create(&self, certs: &[(&str, &str)]) -> Vec<String> {
        let control = self.emulator.control();
        certs
            .iter()
            .enumerate()
            .map(|(i, (vault, name))| {
                let format = if i % 2 == 0 {
                    Format::Pkcs12
                } else {
                    Format::Pem
                };
                control
                    .create_certificate(vault, name, ec(format, 2))
                    .unwrap()
            })
            .collect()
    }

    /// Settings JSON for `urls`, with extra keys merged into `secretsManagementSettings`.
    pub fn settings_json(&self, urls: &[String], extra: serde_json::Value) -> String {
        let certs: Vec<serde_json::Value> = urls
            .iter()
            .map(|u| serde_json::json!({ "url": u, "certificateStoreLocation": self.store.display().to_string() }))
            .collect();
        let mut sms = serde_json::json!({
            "pollingIntervalInS": "3600",
            "requireInitialSync": true,
            "observedCertificates": certs,
        });
        if let serde_json::Value::Object(m) = extra {
            for (k, v) in m {
                sms[k] = v;
            }
        }
        serde_json::to_string(&serde_json::json!({ "secretsManagementSettings": sms })).unwrap()
    }

    pub fn settings(&self, urls: &[String], extra: serde_json::Value) -> Settings {
        akv_sync_config::parse(&self.settings_json(urls, extra))
            .unwrap_or_else(|e| panic!("test settings invalid: {e:?}"))
            .settings
    }

    pub fn ports(&self, settings: &Settings, probe: &Probe) -> RealPorts {
        let mut net = net_for_emulator(self.emulator.vault_addr, &self.emulator.ca_pem);
        net.request_timeout = Some(Duration::from_secs(2));
        ports_with(
            settings,
            &net,
            Some(self.emulator.imds_endpoint.clone()),
            probe.status.clone(),
            probe.observer.clone(),
        )
        .unwrap()
    }

    pub fn start_agent(&self, settings: &Settings, probe: &Probe) -> Agent {
        Agent::start(settings, self.ports(settings, probe))
    }

    pub fn link(&self, vault: &str, name: &str) -> PathBuf {
        self.store.join(format!("{vault}.{name}"))
    }

    /// The version the link points at.
    pub fn installed(&self, vault: &str, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.link(vault, name)).ok()?;
        let t = target.to_string_lossy().into_owned();
        t.strip_prefix(&format!("{vault}.{name}."))
            .map(str::to_owned)
    }
}

pub fn url(vault: &str, name: &str) -> String {
    format!("https://{vault}.vault.azure.net/secrets/{name}")
}

/// Events from the agent: statuses, checks and installs, as channels to wait on.
#[derive(Clone)]
pub struct Probe {
    pub status: Arc<dyn StatusSink>,
    pub observer: Arc<dyn Observer>,
    pub statuses: Arc<Mutex<Vec<Status>>>,
}

pub struct ProbeEvents {
    pub installs: mpsc::UnboundedReceiver<NewVersion>,
    pub checks: mpsc::UnboundedReceiver<(String, CheckOutcome)>,
}

struct Sink(Arc<Mutex<Vec<Status>>>);
impl StatusSink for Sink {
    fn report(&self, status: &Status) {
        self.0.lock().unwrap().push(status.clone());
    }
}

struct Obs {
    installs: mpsc::UnboundedSender<NewVersion>,
    checks: mpsc::UnboundedSender<(String, CheckOutcome)>,
}
impl Observer for Obs {
    fn checked(&self, cert: &ObservedCertificate, outcome: &CheckOutcome) {
        let _ = self
            .checks
            .send((akv_sync_actors::certificate_id(cert), outcome.clone()));
    }
    fn installed_batch(&self, batch: &[NewVersion]) {
        for i in batch {
            let _ = self.installs.send(i.clone());
        }
    }
}

pub fn probe() -> (Probe, ProbeEvents) {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (itx, installs) = mpsc::unbounded_channel();
    let (ctx, checks) = mpsc::unbounded_channel();
    (
        Probe {
            status: Arc::new(Sink(statuses.clone())),
            observer: Arc::new(Obs {
                installs: itx,
                checks: ctx,
            }),
            statuses,
        },
        ProbeEvents { installs, checks },
    )
}

/// Wait for the gate to reach `state` (bounded: a hang fails the test instead of blocking CI).
pub async fn wait_state(agent: &Agent, state: State) -> Status {
    let mut rx = agent.gate().subscribe();
    tokio::time::timeout(
        Duration::from_secs(120),
        rx.wait_for(|v| v.status.state == state),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "gate never reached {state:?}: {:?}",
            agent.gate().view().status
        )
    })
    .unwrap()
    .status
    .clone()
}

/// Wait for the next check of `id` that matches `pred`. `id` is a certificate id
/// ([`akv_sync_actors::certificate_id`]), or `vault/name` for that certificate in any store.
pub async fn wait_check(
    events: &mut ProbeEvents,
    id: &str,
    pred: impl Fn(&CheckOutcome) -> bool,
) -> CheckOutcome {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let (cid, outcome) = events.checks.recv().await.expect("agent running");
            let same = cid == id || cid.strip_prefix(id).is_some_and(|r| r.starts_with(" in "));
            if same && pred(&outcome) {
                return outcome;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching check of {id}"))
}

/// The installed file parses as a full chain whose key matches its leaf.
pub fn assert_full_chain(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let blocks = pem::parse_many(text.as_bytes()).unwrap();
    assert!(
        blocks.len() >= 2,
        "{}: leaf and key at least",
        path.display()
    );
    assert_eq!(blocks[0].tag(), "CERTIFICATE", "leaf first");
    assert_eq!(blocks.last().unwrap().tag(), "PRIVATE KEY", "key last");
    // Re-reading it as a PEM secret succeeds only if the key matches the leaf.
    akv_sync_material::convert(&text, "application/x-pem-file", 0)
        .expect("the installed PEM is a valid full chain");
}
