//! In-memory fakes of the reconciler's ports, for paused-time tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync_actors::*;
use akv_sync_config::*;

/// A token source that counts fetches.
#[derive(Default)]
pub struct FakeIdentity {
    pub fetches: AtomicU32,
}

impl TokenSource for FakeIdentity {
    async fn fetch(&self, audience: &str) -> Result<FetchedToken, SourceError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(FetchedToken {
            secret: format!("token-{audience}-{n}"),
            expires_in: Duration::from_secs(24 * 3600),
        })
    }
}

/// A Key Vault with versions per (vault, name) and queued faults.
#[derive(Default)]
pub struct FakeVault {
    pub secrets: Mutex<HashMap<(String, String), Vec<String>>>,
    pub faults: Mutex<HashMap<(String, String), VecDeque<SourceError>>>,
    pub gets: AtomicU32,
}

impl FakeVault {
    pub fn put(&self, vault: &str, name: &str, version: &str) {
        self.secrets
            .lock()
            .unwrap()
            .entry((vault.into(), name.into()))
            .or_default()
            .push(version.into());
    }
    pub fn fail(&self, vault: &str, name: &str, class: ErrorClass, times: usize) {
        let mut f = self.faults.lock().unwrap();
        let q = f.entry((vault.into(), name.into())).or_default();
        for _ in 0..times {
            q.push_back(SourceError::new(class, format!("injected {class:?}")));
        }
    }
}

impl SecretSource for FakeVault {
    async fn get(
        &self,
        url: &CertificateUrl,
        _token: &Token,
        installed: Option<&str>,
    ) -> Result<Fetched, SourceError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let key = (url.vault.clone(), url.name.clone());
        if let Some(e) = self
            .faults
            .lock()
            .unwrap()
            .get_mut(&key)
            .and_then(|q| q.pop_front())
        {
            return Err(e);
        }
        let secrets = self.secrets.lock().unwrap();
        let versions = secrets
            .get(&key)
            .ok_or_else(|| SourceError::new(ErrorClass::NotFound, "SecretNotFound"))?;
        let version = match &url.version {
            Some(v) => versions
                .iter()
                .find(|x| *x == v)
                .cloned()
                .ok_or_else(|| SourceError::new(ErrorClass::NotFound, "SecretNotFound"))?,
            None => versions.last().unwrap().clone(),
        };
        // As Key Vault's client does: the installed version's value is not kept.
        if installed == Some(version.as_str()) {
            return Ok(Fetched::Unchanged {
                version,
                enabled: true,
            });
        }
        Ok(Fetched::New(SecretBundle {
            value: format!("pem-of-{version}").into(),
            content_type: "application/x-pem-file".into(),
            version,
            enabled: true,
        }))
    }
}

/// A store in memory: (store folder, vault, name) → installed versions, current last.
#[derive(Default)]
pub struct FakeStore {
    pub files: Mutex<BTreeMap<(PathBuf, String, String), Vec<String>>>,
    /// Installs into this folder fail with this kind while the count is above zero.
    pub failing_store: Mutex<Option<(PathBuf, u32, InstallFailure)>>,
    pub writes: AtomicU32,
    pub installs: AtomicU32,
    pub reject_value: Mutex<Option<String>>,
    /// Reads of the installed version (what an unchanged poll may skip).
    pub reads: AtomicU32,
    /// The store's stamp, as the real store takes it from its folder: `None` (the default)
    /// offers none, and then [`Installer::known_version`] knows nothing.
    pub stamp: Mutex<Option<u64>>,
    /// What `installed_version` last read, with the stamp taken before it.
    known: Mutex<HashMap<Key, (String, u64)>>,
}

impl FakeStore {
    pub fn current(&self, vault: &str, name: &str) -> Option<String> {
        self.current_in("/store", vault, name)
    }
    pub fn current_in(&self, store: &str, vault: &str, name: &str) -> Option<String> {
        self.files
            .lock()
            .unwrap()
            .get(&(store.into(), vault.into(), name.into()))
            .and_then(|v| v.last().cloned())
    }
    /// Put `version` on disk as if a previous run had installed it.
    pub fn preinstall(&self, vault: &str, name: &str, version: &str) {
        self.files
            .lock()
            .unwrap()
            .entry(("/store".into(), vault.into(), name.into()))
            .or_default()
            .push(version.into());
    }
}

impl Installer for FakeStore {
    type Prepared = String;

    fn prepare(
        &self,
        _cert: &ObservedCertificate,
        secret: SecretBundle,
    ) -> Result<String, InstallError> {
        if self.reject_value.lock().unwrap().as_deref() == Some(secret.value.as_str()) {
            return Err(InstallError::new(
                InstallFailure::Material,
                "the key matches no certificate",
            ));
        }
        Ok(secret.value.to_string())
    }

    fn install(
        &self,
        cert: &ObservedCertificate,
        version: &str,
        _p: String,
    ) -> Result<InstallReport, InstallError> {
        self.installs.fetch_add(1, Ordering::SeqCst);
        self.known.lock().unwrap().remove(&key(cert));
        if let Some((store, left, kind)) = &mut *self.failing_store.lock().unwrap()
            && *store == cert.store
            && *left > 0
        {
            *left -= 1;
            return Err(InstallError::new(*kind, "the store folder is not writable"));
        }
        let mut files = self.files.lock().unwrap();
        let versions = files
            .entry((
                cert.store.clone(),
                cert.url.vault.clone(),
                cert.url.name.clone(),
            ))
            .or_default();
        if versions.last().map(String::as_str) == Some(version) {
            return Ok(InstallReport::Unchanged);
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        let previous_version = versions.last().cloned();
        versions.push(version.into());
        Ok(InstallReport::Installed { previous_version })
    }

    fn installed_version(
        &self,
        cert: &ObservedCertificate,
    ) -> Result<Option<String>, InstallError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let stamp = *self.stamp.lock().unwrap();
        let current = self
            .files
            .lock()
            .unwrap()
            .get(&key(cert))
            .and_then(|v| v.last().cloned());
        let mut known = self.known.lock().unwrap();
        match (&current, stamp) {
            (Some(version), Some(stamp)) => known.insert(key(cert), (version.clone(), stamp)),
            _ => known.remove(&key(cert)),
        };
        Ok(current)
    }

    fn known_version(&self, cert: &ObservedCertificate) -> Option<String> {
        let stamp = (*self.stamp.lock().unwrap())?;
        match self.known.lock().unwrap().get(&key(cert)) {
            Some((version, known)) if *known == stamp => Some(version.clone()),
            _ => None,
        }
    }
}

/// (store, vault, name): an observed certificate.
type Key = (PathBuf, String, String);

fn key(cert: &ObservedCertificate) -> Key {
    (
        cert.store.clone(),
        cert.url.vault.clone(),
        cert.url.name.clone(),
    )
}

/// Records every status.
#[derive(Default)]
pub struct StatusLog(pub Mutex<Vec<Status>>);
impl StatusSink for StatusLog {
    fn report(&self, status: &Status) {
        self.0.lock().unwrap().push(status.clone());
    }
}

pub fn cert(vault: &str, name: &str) -> ObservedCertificate {
    cert_in(vault, name, Cloud::Public, None)
}

pub fn cert_in(
    vault: &str,
    name: &str,
    cloud: Cloud,
    version: Option<&str>,
) -> ObservedCertificate {
    let host = format!("{vault}.{}", cloud.suffix());
    ObservedCertificate {
        json_path: format!("observedCertificates[{name}]"),
        url: CertificateUrl {
            original: format!("https://{host}/secrets/{name}"),
            vault: vault.into(),
            host,
            port: None,
            cloud,
            name: name.into(),
            version: version.map(Into::into),
        },
        store: PathBuf::from("/store"),
        link_name: None,
        acls: vec![],
        outputs: ExtraOutputs::default(),
        hook: None,
    }
}

pub fn settings(certs: Vec<ObservedCertificate>, require_initial_sync: bool) -> Settings {
    Settings {
        wrapper: Wrapper::Bare,
        schema: Schema::V3,
        polling_interval: Duration::from_secs(3600),
        require_initial_sync,
        acl_enabled: false,
        certificates: certs,
        identity: Identity::SystemAssigned {
            endpoint: "http://127.0.0.1:1/metadata/identity".into(),
        },
        logging: None,
        agent: AgentSettings {
            jitter: 0.1,
            ..AgentSettings::default()
        },
    }
}

pub struct World {
    pub identity: Arc<FakeIdentity>,
    pub vault: Arc<FakeVault>,
    pub store: Arc<FakeStore>,
    pub status: Arc<StatusLog>,
}

impl World {
    pub fn new() -> Self {
        World {
            identity: Arc::default(),
            vault: Arc::default(),
            store: Arc::default(),
            status: Arc::default(),
        }
    }
    pub fn ports(&self) -> Ports<FakeIdentity, FakeVault, FakeStore> {
        Ports {
            tokens: self.identity.clone(),
            secrets: self.vault.clone(),
            installer: self.store.clone(),
            status: self.status.clone(),
            observer: Arc::new(NoObserver),
        }
    }
}
