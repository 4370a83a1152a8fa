//! [`Control`]: the one way to change what the emulator serves (the admin HTTP API goes
//! through it too), and its errors.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::counters::{Counters, RequestCount, TokenCount};
use super::faults::{Fault, RateLimit};
use super::generator::{self, CertSpec, GenerateError};
use super::state::{EmulatorState, IdentityRef, Inner, Secret, Version, new_version_id, unix_now};

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no secret named {name:?} in vault {vault:?}")]
    SecretNotFound { vault: String, name: String },
    #[error("secret {name:?} in vault {vault:?} has no version {version:?}")]
    VersionNotFound {
        vault: String,
        name: String,
        version: String,
    },
    #[error("secret {name:?} in vault {vault:?} is not a certificate, so it cannot be rotated")]
    NotACertificate { vault: String, name: String },
    #[error("{what} {value:?} is not a valid name: use letters, digits and '-' (1 to 127)")]
    InvalidName { what: &'static str, value: String },
    #[error("could not generate the certificate: {0}")]
    Generate(#[from] GenerateError),
}

/// Key Vault object names: 1–127 of `[0-9a-zA-Z-]`; vault names 3–24 and a DNS label.
fn check_name(what: &'static str, value: &str) -> Result<(), ControlError> {
    let ok = !value.is_empty()
        && value.len() <= 127
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

/// A cheap, cloneable handle to change what the emulator serves, from the same process.
/// Every operation of the admin HTTP API goes through these same methods.
#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<EmulatorState>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    /// Generate a certificate as `spec` says and make it the newest version of secret `name`
    /// in `vault` (creating both as needed). Returns the new version id. Blocking: RSA key
    /// generation takes time, so call it from `spawn_blocking` in latency-sensitive code.
    pub fn create_certificate(
        &self,
        vault: &str,
        name: &str,
        spec: CertSpec,
    ) -> Result<String, ControlError> {
        check_name("vault", vault)?;
        check_name("secret", name)?;
        let generated = generator::generate(&spec)?;
        let value = generator::secret_value(&generated, spec.format)?;
        let now = unix_now();
        let version = Version {
            id: new_version_id(),
            value,
            content_type: Some(spec.format.content_type().to_owned()),
            managed: true,
            enabled: true,
            nbf: Some(generated.not_before),
            exp: Some(generated.not_after),
            created: now,
            updated: now,
        };
        Ok(self.push_version(vault, name, version, Some(spec)))
    }

    /// A new version of certificate `name`, generated with the spec it was created with.
    pub fn rotate(&self, vault: &str, name: &str) -> Result<String, ControlError> {
        let spec = {
            let inner = self.shared.lock();
            let secret = lookup(&inner, vault, name)?;
            secret
                .cert_spec
                .clone()
                .ok_or_else(|| ControlError::NotACertificate {
                    vault: vault.to_owned(),
                    name: name.to_owned(),
                })?
        };
        self.create_certificate(vault, name, spec)
    }

    /// A new version of `name` holding `value` verbatim with `content_type` (omitted from
    /// answers when empty): a plain secret (`managed` absent, no `kid`), e.g. to serve bad input.
    pub fn set_raw_secret(
        &self,
        vault: &str,
        name: &str,
        value: &str,
        content_type: &str,
    ) -> Result<String, ControlError> {
        check_name("vault", vault)?;
        check_name("secret", name)?;
        let now = unix_now();
        let version = Version {
            id: new_version_id(),
            value: Zeroizing::new(value.to_owned()),
            content_type: (!content_type.is_empty()).then(|| content_type.to_owned()),
            managed: false,
            enabled: true,
            nbf: None,
            exp: None,
            created: now,
            updated: now,
        };
        Ok(self.push_version(vault, name, version, None))
    }

    fn push_version(
        &self,
        vault: &str,
        name: &str,
        version: Version,
        spec: Option<CertSpec>,
    ) -> String {
        let id = version.id.clone();
        let mut inner = self.shared.lock();
        let secret = inner
            .vaults
            .entry(vault.to_ascii_lowercase())
            .or_default()
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret {
                name: name.to_owned(),
                versions: Vec::new(),
                cert_spec: None,
            });
        secret.versions.push(version);
        secret.cert_spec = spec;
        id
    }

    /// Disable one version: reading it answers 403 `SecretDisabled`.
    pub fn disable_version(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> Result<(), ControlError> {
        self.set_enabled(vault, name, version, false)
    }

    /// Enable a version disabled before.
    pub fn enable_version(
        &self,
        vault: &str,
        name: &str,
        version: &str,
    ) -> Result<(), ControlError> {
        self.set_enabled(vault, name, version, true)
    }

    fn set_enabled(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> Result<(), ControlError> {
        let mut inner = self.shared.lock();
        let secret = lookup_mut(&mut inner, vault, name)?;
        let v = secret
            .versions
            .iter_mut()
            .find(|v| v.id.eq_ignore_ascii_case(version))
            .ok_or_else(|| ControlError::VersionNotFound {
                vault: vault.to_owned(),
                name: name.to_owned(),
                version: version.to_owned(),
            })?;
        v.enabled = enabled;
        v.updated = unix_now();
        Ok(())
    }

    /// The newest version of `name`, if the secret exists.
    pub fn current_version(&self, vault: &str, name: &str) -> Option<String> {
        let inner = self.shared.lock();
        lookup(&inner, vault, name)
            .ok()
            .and_then(|s| s.versions.last())
            .map(|v| v.id.clone())
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, vault: &str, name: &str) -> Vec<String> {
        let inner = self.shared.lock();
        lookup(&inner, vault, name)
            .map(|s| s.versions.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Let `identity` read secrets of `vault` again (every identity may, until revoked).
    pub fn grant(&self, vault: &str, identity: &IdentityRef) {
        let key = (vault.to_ascii_lowercase(), identity.normalized());
        self.shared.lock().revoked.remove(&key);
    }

    /// Answer 403 `Forbidden` to `identity` on `vault`.
    pub fn revoke(&self, vault: &str, identity: &IdentityRef) {
        let key = (vault.to_ascii_lowercase(), identity.normalized());
        self.shared.lock().revoked.insert(key);
    }

    /// Make a user-assigned identity known to IMDS by its client id.
    pub fn add_user_assigned_identity(&self, client_id: &str) {
        self.shared
            .lock()
            .user_assigned
            .insert(client_id.to_ascii_lowercase());
    }

    /// Make a user-assigned identity known to IMDS by its resource id only
    /// (`/subscriptions/…/userAssignedIdentities/NAME`, asked for with `msi_res_id`).
    pub fn add_user_assigned_resource(&self, resource_id: &str) {
        self.shared
            .lock()
            .user_assigned_resources
            .insert(resource_id.to_ascii_lowercase());
    }

    /// Tokens issued from now on live this long (IMDS's default is 24 hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().token_lifetime = lifetime;
    }

    /// Make every token issued so far expired (the vault then answers 401).
    pub fn expire_tokens(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for t in self.shared.lock().tokens.values_mut() {
            t.expires_at = past;
        }
    }

    /// Add a fault; faults are tried in the order they were added, the first match wins.
    pub fn inject_fault(&self, fault: Fault) {
        let mut fault = fault;
        fault.vault = fault.vault.map(|v| v.to_ascii_lowercase());
        if fault.count != Some(0) {
            self.shared.lock().faults.push(fault);
        }
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Set (or with `None` remove) the request limit of `vault`.
    pub fn set_rate_limit(&self, vault: &str, limit: Option<RateLimit>) {
        let mut inner = self.shared.lock();
        let key = vault.to_ascii_lowercase();
        match limit {
            Some(limit) => {
                inner.rate_limits.insert(key, (limit, VecDeque::new()));
            }
            None => {
                inner.rate_limits.remove(&key);
            }
        }
    }

    /// A snapshot of the request and token counters.
    pub fn counters(&self) -> Counters {
        let inner = self.shared.lock();
        Counters {
            requests: inner
                .requests
                .iter()
                .map(|((server, vault, path, status), count)| RequestCount {
                    server: *server,
                    vault: vault.clone(),
                    path: path.clone(),
                    status: *status,
                    count: *count,
                })
                .collect(),
            tokens_issued: inner
                .tokens_issued
                .iter()
                .map(|((server, identity), count)| TokenCount {
                    server: *server,
                    identity: identity.clone(),
                    count: *count,
                })
                .collect(),
        }
    }

    /// Every distinct secret value served so far (for tests that search logs for leaks).
    pub fn served_secrets(&self) -> Vec<String> {
        let inner = self.shared.lock();
        inner
            .served
            .iter()
            .filter_map(|(vault, name, version)| {
                let secret = inner.vaults.get(vault)?.secrets.get(name)?;
                let v = secret.versions.iter().find(|v| &v.id == version)?;
                Some(v.value.to_string())
            })
            .collect()
    }

    /// Every access token issued so far (for tests that search logs for leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().issued_tokens.clone()
    }
}

fn lookup<'a>(inner: &'a Inner, vault: &str, name: &str) -> Result<&'a Secret, ControlError> {
    inner
        .vaults
        .get(&vault.to_ascii_lowercase())
        .and_then(|v| v.secrets.get(&name.to_ascii_lowercase()))
        .ok_or_else(|| ControlError::SecretNotFound {
            vault: vault.to_owned(),
            name: name.to_owned(),
        })
}

fn lookup_mut<'a>(
    inner: &'a mut Inner,
    vault: &str,
    name: &str,
) -> Result<&'a mut Secret, ControlError> {
    inner
        .vaults
        .get_mut(&vault.to_ascii_lowercase())
        .and_then(|v| v.secrets.get_mut(&name.to_ascii_lowercase()))
        .ok_or_else(|| ControlError::SecretNotFound {
            vault: vault.to_owned(),
            name: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultAction, FaultTarget};
    use crate::state::{Fixed, Server};
    use std::path::PathBuf;

    #[test]
    fn counted_fault_is_used_up() {
        let shared = EmulatorState::new(
            Fixed {
                tenant: "t".into(),
                arc_token_dir: PathBuf::from("/nonexistent"),
            },
            true,
            &[],
            Duration::from_secs(60),
        );
        let control = Control {
            shared: Arc::new(shared),
        };
        control.inject_fault(Fault::new(FaultTarget::Imds, "*", FaultAction::Reset).times(2));
        let s = &control.shared;
        assert!(
            s.take_fault(Server::Vault, Some("v"), "/secrets/a")
                .is_none()
        );
        assert!(s.take_fault(Server::Imds, None, "/x").is_some());
        assert!(s.take_fault(Server::Imds, None, "/x").is_some());
        assert!(s.take_fault(Server::Imds, None, "/x").is_none());
    }
}
