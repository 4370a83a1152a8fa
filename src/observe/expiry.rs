//! Expiry: the leaf's validity read back from an installed PEM file, the expiry metrics and
//! the expiry warnings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use akv_sync_config::ObservedCertificate;

use super::metrics::Metrics;

/// `notAfter` (unix seconds) of the first certificate in a PEM file; `None` if unreadable.
pub fn leaf_not_after(path: &Path) -> Option<i64> {
    let text = std::fs::read(path).ok()?;
    let text = zeroize::Zeroizing::new(text);
    let blocks = pem::parse_many(text.as_slice()).ok()?;
    let leaf = blocks.iter().find(|b| b.tag() == "CERTIFICATE")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.contents()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Expiry of installed versions: read once per version (off the async threads), shown in
/// metrics, and warned about once per (certificate, version) when Key Vault has nothing newer
/// and the version expires within the warning window.
pub struct Expiry {
    warning_days: u32,
    /// notAfter per version file, read once.
    cache: Mutex<HashMap<PathBuf, Option<i64>>>,
    warned: Mutex<HashSet<(String, String)>>,
}

impl Expiry {
    pub fn new(warning_days: u32) -> Self {
        Expiry {
            warning_days,
            cache: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// A check found `version` current (installed and Key Vault's newest): look at its expiry.
    pub fn current(
        self: &Arc<Self>,
        cert: &Arc<ObservedCertificate>,
        version: &str,
        metrics: &Arc<Metrics>,
    ) {
        let path = cert.version_path(version);
        let cached = self
            .cache
            .lock()
            .expect("expiry cache lock")
            .get(&path)
            .copied();
        match cached {
            Some(not_after) => self.apply(cert, version, not_after, metrics),
            None => {
                let (this, cert, version, metrics) = (
                    self.clone(),
                    cert.clone(),
                    version.to_owned(),
                    metrics.clone(),
                );
                let read = move || {
                    let not_after = leaf_not_after(&path);
                    this.cache
                        .lock()
                        .expect("expiry cache lock")
                        .insert(path, not_after);
                    this.apply(&cert, &version, not_after, &metrics);
                };
                // Reading a file is blocking work: never on the async threads.
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(read)),
                    Err(_) => read(),
                }
            }
        }
    }

    fn apply(
        &self,
        cert: &ObservedCertificate,
        version: &str,
        not_after: Option<i64>,
        metrics: &Metrics,
    ) {
        let Some(not_after) = not_after else { return };
        let now = crate::clock::now_unix();
        let window = i64::from(self.warning_days) * 86_400;
        let expiring = not_after.saturating_sub(now) < window;
        metrics.expiry(cert, not_after, expiring);
        let first_time = expiring
            && self
                .warned
                .lock()
                .expect("warned lock")
                .insert((cert.id(), version.to_owned()));
        if first_time {
            tracing::warn!(vault = %cert.url.vault, name = %cert.url.name, version = %version,
                days_left = not_after.saturating_sub(now) / 86_400,
                "certificate expires within {} days and Key Vault has no newer version: renew it in Key Vault",
                self.warning_days);
        }
    }
}
