//! The reconciler's installer: material (secret → verified, ordered full chain) and the store
//! (atomic files, links, ACLs) behind the [`Installer`] port.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use akv_sync_actors::{InstallError, InstallFailure, InstallReport, Installer, SecretBundle};
use akv_sync_config::{ObservedCertificate, Settings};
use tracing::warn;
use zeroize::Zeroizing;

use crate::store::{self, InstallOutcome, InstallRequest, Output, Store};
use akv_sync_material as material;

/// A converted certificate, ready for the writer: the combined file, and the separate
/// outputs the certificate asks for (rendered only when asked).
pub struct Prepared {
    full_chain: Zeroizing<Vec<u8>>,
    outputs: Vec<(String, Zeroizing<Vec<u8>>, bool)>,
    /// Fingerprint of the `pfxPasswordFile` password the PFX was made with.
    pfx_password: Option<[u8; 32]>,
}

/// Converts with [`material::convert`] and installs with [`Store`].
pub struct StoreInstaller {
    acl_enabled: bool,
    traverse_ancestors: bool,
    prune_keep: Option<usize>,
    stores: Mutex<HashMap<PathBuf, Opened>>,
    /// The `pfxPasswordFile` passwords the installed PFX outputs were made with, by
    /// (store, certificate) — see [`crate::store::output::PasswordWatch`].
    pfx_passwords: crate::store::output::PasswordWatch,
    /// By certificate id: the version `installed_version` last read, with the [`Stamp`]
    /// taken just before that read. While the stamp is unchanged the answer is the same, so
    /// [`Installer::known_version`] gives it without the writer or the disk.
    known: Mutex<HashMap<String, (String, Stamp)>>,
}

/// A store folder's (device, inode, mtime, ctime), and its `pfxPasswordFile`'s changes:
/// compared only for equality (see [`StoreInstaller::stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp([u64; 4]);

/// A store folder opened once, with the identity (device, inode) it had then: if the path
/// later names another folder (deleted and re-created, renamed), the store is opened again.
struct Opened {
    store: Arc<Store>,
    id: (u64, u64),
}

fn folder_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// How long a store folder must have been left alone before its stamp is trusted.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

impl StoreInstaller {
    pub fn new(settings: &Settings) -> Self {
        StoreInstaller {
            acl_enabled: settings.acl_enabled,
            traverse_ancestors: settings.agent.traverse_ancestors,
            prune_keep: settings.agent.prune_keep,
            stores: Mutex::new(HashMap::new()),
            pfx_passwords: crate::store::output::PasswordWatch::default(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The store of a folder, opened once (and its crash left-overs cleaned then).
    fn store(&self, cert: &ObservedCertificate) -> Result<Arc<Store>, InstallError> {
        let mut stores = self.stores.lock().expect("stores lock");
        if let Some(o) = stores.get(&cert.store)
            && folder_id(&cert.store) == Some(o.id)
        {
            return Ok(o.store.clone());
        }
        if stores.remove(&cert.store).is_some() {
            warn!(store = %cert.store.display(), "the store folder was removed or replaced; opening it again");
        }
        let store = Store::open(&cert.store).map_err(|e| store_error(cert, e))?;
        store.set_traverse_ancestors(self.traverse_ancestors);
        match store.clean_temporaries() {
            Ok(0) => {}
            Ok(n) => {
                warn!(store = %cert.store.display(), removed = n, "removed temporary files left by an interrupted write")
            }
            Err(e) => {
                warn!(store = %cert.store.display(), error = %e, "cannot clean temporary files")
            }
        }
        let store = Arc::new(store);
        if let Some(id) = folder_id(&cert.store) {
            stores.insert(
                cert.store.clone(),
                Opened {
                    store: store.clone(),
                    id,
                },
            );
        }
        Ok(store)
    }
}

/// Errors that retrying cannot fix until the settings or the host change.
fn is_fatal(e: &store::StoreError) -> bool {
    use store::StoreError as E;
    matches!(
        e,
        E::UnsafeName { .. }
            | E::UnknownUser { .. }
            | E::UnknownGroup { .. }
            | E::StoreIsSymlink { .. }
            | E::StoreNotDirectory { .. }
            | E::StoreNotOwned { .. }
            | E::UnsafeParent { .. }
    )
}

fn store_error(cert: &ObservedCertificate, e: store::StoreError) -> InstallError {
    let message = format!("{}: {}", cert.id(), crate::azure::identity::error_chain(&e));
    let kind = if is_fatal(&e) {
        InstallFailure::Refused
    } else {
        InstallFailure::Store
    };
    InstallError::new(kind, message)
}

impl Installer for StoreInstaller {
    type Prepared = Prepared;

    fn prepare(
        &self,
        cert: &ObservedCertificate,
        secret: SecretBundle,
    ) -> Result<Prepared, InstallError> {
        let m = material::convert(
            &secret.value,
            &secret.content_type,
            crate::clock::now_unix(),
        )
        .map_err(|e| {
            InstallError::new(
                InstallFailure::Material,
                format!(
                    "{} version {}: {e}; the installed files stay as they are",
                    cert.id(),
                    secret.version
                ),
            )
        })?;
        for w in &m.warnings {
            warn!(vault = %cert.url.vault, name = %cert.url.name, version = %secret.version, "{w}");
        }
        let (outputs, pfx_password) = crate::store::output::render(cert, &m, &self.pfx_passwords)
            .map_err(|e| {
            InstallError::new(
                InstallFailure::Material,
                format!(
                    "{}/{} version {}: {e}; the installed files stay as they are",
                    cert.url.vault, cert.url.name, secret.version
                ),
            )
        })?;
        Ok(Prepared {
            full_chain: m.full_chain_pem(),
            outputs,
            pfx_password,
        })
    }

    fn install(
        &self,
        cert: &ObservedCertificate,
        version: &str,
        p: Prepared,
    ) -> Result<InstallReport, InstallError> {
        // Whatever the install does, the next check reads the disk again.
        self.known_lock().remove(&cert.id());
        let store = self.store(cert)?;
        let grants = if self.acl_enabled {
            Some(store::resolve_grants(&cert.acls).map_err(|e| store_error(cert, e))?)
        } else {
            None
        };
        let outputs: Vec<Output<'_>> = p
            .outputs
            .iter()
            .map(|(file_name, content, secret)| Output {
                file_name,
                content,
                secret: *secret,
            })
            .collect();
        let request = InstallRequest {
            vault: &cert.url.vault,
            name: &cert.url.name,
            version,
            full_chain_pem: &p.full_chain,
            link_name: cert.link_name.as_deref(),
            acl: grants.as_deref(),
            outputs: &outputs,
            prune_keep: self.prune_keep,
        };
        // Installs come from the writer, which ends the batch after each run of requests.
        store.begin_batch();
        let outcome = store.install(&request).map_err(|e| store_error(cert, e))?;
        self.pfx_passwords.installed(cert, p.pfx_password);
        Ok(match outcome {
            InstallOutcome::Unchanged => InstallReport::Unchanged,
            InstallOutcome::Repaired => InstallReport::Repaired,
            InstallOutcome::Installed {
                previous_version, ..
            } => InstallReport::Installed { previous_version },
        })
    }

    fn commit(&self) {
        for o in self.stores.lock().expect("stores lock").values() {
            if let Err(e) = o.store.end_batch() {
                // The links are in place (every reader sees them) but may not survive a
                // power loss; the next batch's sync tries again.
                tracing::error!(store = %o.store.path().display(), error = %e,
                    "cannot make the store folder's new links durable");
            }
        }
    }

    fn known_version(&self, cert: &ObservedCertificate) -> Option<String> {
        let stamp = self.stamp(cert)?;
        match self.known_lock().get(&cert.id()) {
            Some((version, known)) if *known == stamp => Some(version.clone()),
            _ => None,
        }
    }

    fn installed_version(
        &self,
        cert: &ObservedCertificate,
    ) -> Result<Option<String>, InstallError> {
        // The stamp is taken before the read: if the folder changes in between, the next
        // stamp differs and the disk is read again.
        let stamp = self.stamp(cert);
        let read = self.read_installed(cert);
        let mut known = self.known_lock();
        match (&read, stamp) {
            (Ok(Some(version)), Some(stamp)) => known.insert(cert.id(), (version.clone(), stamp)),
            _ => known.remove(&cert.id()),
        };
        read
    }
}

impl StoreInstaller {
    /// The folder's (device, inode, mtime, ctime): every change to a link or file in it
    /// (create, rename, unlink) moves its mtime, and replacing the folder changes its
    /// identity. A folder modified less than [`QUIET`] ago gets no stamp: timestamps have a
    /// coarse granularity, so a change right after the stamp could leave it equal.
    fn stamp(&self, cert: &ObservedCertificate) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&cert.store).ok()?;
        if !m.is_dir() {
            return None;
        }
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        // Entries are created, renamed and removed only with the folder's mtime moving.
        let changed = ns(m.mtime(), m.mtime_nsec());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos() as i128;
        if now - changed < QUIET.as_nanos() as i128 {
            return None;
        }
        let mut stamp = [
            m.dev(),
            m.ino(),
            ns(m.mtime(), m.mtime_nsec()) as u64,
            ns(m.ctime(), m.ctime_nsec()) as u64,
        ];
        // A PFX also depends on its password file: rewriting it (mtime) or replacing it
        // (inode) moves the stamp, under the same quiet rule as the folder.
        if let Some(path) = cert
            .outputs
            .pfx
            .as_ref()
            .and_then(|p| p.password_file.as_ref())
        {
            let pw = std::fs::symlink_metadata(path).ok()?;
            let changed = ns(pw.mtime(), pw.mtime_nsec());
            if now - changed < QUIET.as_nanos() as i128 {
                return None;
            }
            stamp[3] ^= (changed as u64).rotate_left(1) ^ pw.ino().rotate_left(32) ^ pw.size();
        }
        Some(Stamp(stamp))
    }

    fn read_installed(&self, cert: &ObservedCertificate) -> Result<Option<String>, InstallError> {
        let store = self.store(cert)?;
        let current = store
            .current(&cert.url.vault, &cert.url.name)
            .map_err(|e| store_error(cert, e))?;
        if current.is_some() && self.pfx_passwords.changed(cert) {
            // Reported as not installed: the next check converts and installs again, and
            // the store rewrites only the PFX (the version file has the same bytes).
            tracing::info!(vault = %cert.url.vault, name = %cert.url.name,
                "pfxPasswordFile changed since the PFX was written; writing it again");
            return Ok(None);
        }
        Ok(current.map(|c| c.version))
    }

    fn known_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Stamp)>> {
        // Only whole entries are stored: a poisoned lock still holds consistent ones.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn installer_and_cert(store: &std::path::Path) -> (StoreInstaller, ObservedCertificate) {
        installer_and_cert_with(store, serde_json::json!({}))
    }

    fn installer_and_cert_with(
        store: &std::path::Path,
        outputs: serde_json::Value,
    ) -> (StoreInstaller, ObservedCertificate) {
        let text = serde_json::json!({"secretsManagementSettings": {
            "observedCertificates": [{
                "url": "https://v.vault.azure.net/secrets/c",
                "certificateStoreLocation": store,
                "akvSync": {"outputs": outputs},
            }],
        }})
        .to_string();
        let settings = akv_sync_config::parse(&text).expect("settings").settings;
        let cert = ObservedCertificate::clone(&settings.certificates[0]);
        (StoreInstaller::new(&settings), cert)
    }

    fn age(path: &std::path::Path, by: Duration) {
        let old = SystemTime::now() - by;
        std::fs::File::open(path)
            .and_then(|f| f.set_modified(old))
            .expect("set the folder's mtime");
    }

    #[test]
    fn a_quiet_folder_has_a_stamp_that_any_change_in_it_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let (installer, cert) = installer_and_cert(&store);

        assert_eq!(
            installer.stamp(&cert),
            None,
            "just created: too recent to trust"
        );
        age(&store, Duration::from_secs(60));
        let quiet = installer
            .stamp(&cert)
            .expect("a folder left alone has a stamp");
        assert_eq!(installer.stamp(&cert), Some(quiet), "and it holds");

        std::os::unix::fs::symlink("v.c.1", store.join("v.c")).unwrap();
        assert_eq!(installer.stamp(&cert), None, "changed just now");
        age(&store, Duration::from_secs(30));
        let after = installer.stamp(&cert).expect("quiet again");
        assert_ne!(after, quiet, "a new entry moves the stamp");

        std::fs::remove_dir_all(&store).unwrap();
        assert_eq!(installer.stamp(&cert), None, "no folder, no stamp");
        std::fs::create_dir(&store).unwrap();
        age(&store, Duration::from_secs(30));
        assert_ne!(
            installer.stamp(&cert),
            Some(after),
            "another folder, another stamp"
        );
    }

    /// A watcher skips reading the disk while the stamp holds: a rewritten or replaced
    /// `pfxPasswordFile` must move it, or the PFX would keep the old password.
    #[test]
    fn a_rewritten_or_replaced_pfx_password_file_moves_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let pass = dir.path().join("web.pass");
        std::fs::write(&pass, "one\n").unwrap();
        let (installer, cert) = installer_and_cert_with(
            &store,
            serde_json::json!({"pfx": "web.pfx", "pfxPasswordFile": pass}),
        );
        age(&store, Duration::from_secs(60));
        assert_eq!(installer.stamp(&cert), None, "password file just written");
        age(&pass, Duration::from_secs(60));
        let quiet = installer.stamp(&cert).expect("both quiet: a stamp");

        std::fs::write(&pass, "two\n").unwrap();
        assert_eq!(installer.stamp(&cert), None, "changed just now");
        age(&pass, Duration::from_secs(30));
        let rewritten = installer.stamp(&cert).expect("quiet again");
        assert_ne!(rewritten, quiet, "a rewrite moves the stamp");

        let next = dir.path().join("web.pass.new");
        std::fs::write(&next, "two\n").unwrap();
        std::fs::rename(&next, &pass).unwrap();
        age(&pass, Duration::from_secs(30));
        assert_ne!(
            installer.stamp(&cert),
            Some(rewritten),
            "a replaced file moves it"
        );
        std::fs::remove_file(&pass).unwrap();
        assert_eq!(installer.stamp(&cert), None, "no password file, no stamp");
    }

    /// An unchanged poll needs neither the writer nor the disk while nothing in the folder
    /// changed: the version read last is known until the folder's stamp moves.
    #[test]
    fn the_version_read_last_is_known_until_the_folder_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let put = |version: &str| {
            let file = format!("v.c.{version}");
            std::fs::write(store.join(&file), "not read").unwrap();
            std::os::unix::fs::symlink(&file, store.join("v.c.new")).unwrap();
            std::fs::rename(store.join("v.c.new"), store.join("v.c")).unwrap();
        };
        let (one, two) = (
            "0123456789abcdef0123456789abcdef",
            "fedcba9876543210fedcba9876543210",
        );
        put(one);
        let (installer, cert) = installer_and_cert(&store);
        age(&store, Duration::from_secs(60));
        assert_eq!(installer.known_version(&cert), None, "nothing read yet");
        assert_eq!(
            installer.installed_version(&cert).unwrap().as_deref(),
            Some(one)
        );
        assert_eq!(
            installer.known_version(&cert).as_deref(),
            Some(one),
            "known while the folder is untouched"
        );

        // Someone else moves the link: the folder's stamp moves with it.
        put(two);
        assert_eq!(installer.known_version(&cert), None, "changed just now");
        age(&store, Duration::from_secs(30));
        assert_eq!(installer.known_version(&cert), None, "the stamp moved");
        assert_eq!(
            installer.installed_version(&cert).unwrap().as_deref(),
            Some(two)
        );
        assert_eq!(installer.known_version(&cert).as_deref(), Some(two));

        // A folder too fresh to stamp is never vouched for.
        std::fs::remove_file(store.join("v.c")).unwrap();
        assert_eq!(installer.installed_version(&cert).unwrap(), None);
        assert_eq!(installer.known_version(&cert), None);
    }
}
