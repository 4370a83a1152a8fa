//! The store's names — the one place that knows them (SPEC §3). Every other module asks here:
//!
//! ```text
//! <store>/<vault>.<name>             link -> <vault>.<name>.<version>
//! <store>/<vault>.<name>.<version>   the full-chain PEM of that version
//! <store>/<customSymbolicLinkName>   link -> <vault>.<name>.<version> (when set)
//! ```
//! and how a certificate is named: an observed certificate is (store folder, vault, name), its
//! id `<vault>/<name> in <store>` (the gate, status, metrics, reloads); the secret it follows
//! is `<vault>/<name>` (log fields, hook variables). One certificate may be observed in
//! several stores.

use std::path::PathBuf;

use crate::model::{CertificateUrl, ObservedCertificate};

/// `<vault>.<name>`: the link's name, and the prefix of every version file.
pub fn stem(vault: &str, name: &str) -> String {
    format!("{vault}.{name}")
}

/// `<stem>.<version>`: the file of one version.
pub fn version_file(stem: &str, version: &str) -> String {
    format!("{stem}.{version}")
}

/// The version in a file name or link target `<stem>.<version>`, if it is one of `stem`'s.
pub fn version_in<'a>(stem: &str, file: &'a str) -> Option<&'a str> {
    file.strip_prefix(stem)?
        .strip_prefix('.')
        .filter(|v| !v.is_empty())
}

/// `<vault>.<name>.<version>` → (`<vault>.<name>`, `<version>`): what the folder listing
/// counts as a version file of a certificate (its type is checked when it is used). Only a
/// Key Vault version — 32 hex digits — makes a version file: any other `<stem>.<x>` (an
/// administrator's `web.bak`, another certificate's output) is never given this
/// certificate's ACL nor pruned.
pub fn split_version(file: &str) -> Option<(&str, &str)> {
    let (stem, version) = file.rsplit_once('.')?;
    is_vault_version(version).then_some((stem, version))
}

/// Whether `v` has the form of a Key Vault version id: 32 hex digits.
pub fn is_vault_version(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<vault>/<name>`: the secret a certificate follows.
pub fn secret_id(vault: &str, name: &str) -> String {
    format!("{vault}/{name}")
}

impl CertificateUrl {
    /// The file-name stem used in the store: `{vault}.{name}`.
    pub fn stem(&self) -> String {
        stem(&self.vault, &self.name)
    }
}

impl ObservedCertificate {
    /// `<vault>/<name> in <store>`: the observed certificate's identity (the same secret
    /// may be observed in several stores).
    pub fn id(&self) -> String {
        format!(
            "{} in {}",
            secret_id(&self.url.vault, &self.url.name),
            self.store.display()
        )
    }

    /// `<vault>/<name>`: the secret it follows.
    pub fn secret_id(&self) -> String {
        secret_id(&self.url.vault, &self.url.name)
    }

    /// `<store>/<vault>.<name>`: the link to the current version.
    pub fn link_path(&self) -> PathBuf {
        self.store.join(self.url.stem())
    }

    /// `<vault>.<name>.<version>`.
    pub fn version_file(&self, version: &str) -> String {
        version_file(&self.url.stem(), version)
    }

    /// `<store>/<vault>.<name>.<version>`.
    pub fn version_path(&self, version: &str) -> PathBuf {
        self.store.join(self.version_file(version))
    }

    /// `<store>/<customSymbolicLinkName>`, when set.
    pub fn custom_link_path(&self) -> Option<PathBuf> {
        self.link_name.as_ref().map(|l| self.store.join(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_read_back_only_from_its_own_certificates_files() {
        let s = stem("exampleVault", "web");
        assert_eq!(s, "exampleVault.web");
        let f = version_file(&s, "0123abcd");
        assert_eq!(version_in(&s, &f), Some("0123abcd"));
        assert_eq!(version_in(&s, "exampleVault.webapi.0123"), None);
        assert_eq!(version_in(&s, "exampleVault.web."), None);
        assert_eq!(version_in(&s, "exampleVault.web"), None);
        assert_eq!(secret_id("exampleVault", "web"), "exampleVault/web");
    }
}
