//! Everything the emulator knows (vaults, identities, tokens, the faults and counters of
//! [`faults`](super::faults) and [`counters`](super::counters)); [`Control`](super::control)
//! changes it.
//!
//! One `std::sync::Mutex` guards it all: this is a test double, every critical section is a
//! few map operations with no `.await` inside, and a single lock keeps each request's view
//! consistent (a rotation is never half-visible). Slow work (key generation) happens before
//! the lock is taken.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::faults::{Fault, RateLimit};
use super::generator::CertSpec;
pub use super::service::Server;

/// An identity a token can be issued to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IdentityRef {
    /// The VM's system-assigned identity (IMDS without `client_id`).
    SystemAssigned,
    /// A user-assigned identity, by client id (IMDS `client_id=`). Compared case-insensitively.
    #[serde(rename_all = "camelCase")]
    UserAssigned { client_id: String },
    /// A user-assigned identity known by its resource id only (IMDS `msi_res_id=` or
    /// `mi_res_id=`). Compared case-insensitively, as Azure compares resource ids.
    #[serde(rename_all = "camelCase")]
    UserAssignedByResourceId { resource_id: String },
    /// The Azure Arc machine's identity (HIMDS).
    Arc,
}

impl IdentityRef {
    pub(crate) fn normalized(&self) -> IdentityRef {
        match self {
            IdentityRef::UserAssigned { client_id } => IdentityRef::UserAssigned {
                client_id: client_id.to_ascii_lowercase(),
            },
            IdentityRef::UserAssignedByResourceId { resource_id } => {
                IdentityRef::UserAssignedByResourceId {
                    resource_id: resource_id.to_ascii_lowercase(),
                }
            }
            other => other.clone(),
        }
    }

    /// The application (client) id this identity presents in tokens.
    pub fn app_id(&self) -> String {
        match self {
            IdentityRef::UserAssigned { client_id } => client_id.to_ascii_lowercase(),
            other => guid_from(&format!("appid:{other}")),
        }
    }

    /// The object id of this identity's service principal.
    pub fn object_id(&self) -> String {
        guid_from(&format!("oid:{}", self.normalized()))
    }
}

impl fmt::Display for IdentityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityRef::SystemAssigned => f.write_str("system"),
            IdentityRef::UserAssigned { client_id } => {
                write!(f, "user:{}", client_id.to_ascii_lowercase())
            }
            IdentityRef::UserAssignedByResourceId { resource_id } => {
                write!(f, "user-resource:{}", resource_id.to_ascii_lowercase())
            }
            IdentityRef::Arc => f.write_str("arc"),
        }
    }
}

/// Whether a `--user-assigned` value is a resource id (`/subscriptions/…`) rather than a client id.
pub fn is_resource_id(s: &str) -> bool {
    s.starts_with('/')
}

/// A stable GUID-shaped id derived from `seed`.
fn guid_from(seed: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One version of a secret.
pub(crate) struct Version {
    pub id: String,
    pub value: Zeroizing<String>,
    pub content_type: Option<String>,
    pub managed: bool,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

pub(crate) struct Secret {
    /// The name as first created (Key Vault names are case-insensitive; ids keep this form).
    pub name: String,
    /// Oldest first; the last one is what `GET /secrets/{name}` returns.
    pub versions: Vec<Version>,
    pub cert_spec: Option<CertSpec>,
}

#[derive(Default)]
pub(crate) struct VaultData {
    pub secrets: HashMap<String, Secret>,
}

pub(crate) struct TokenInfo {
    pub identity: IdentityRef,
    pub audience: String,
    pub expires_at: SystemTime,
}

pub(crate) struct Inner {
    pub vaults: HashMap<String, VaultData>,
    pub revoked: HashSet<(String, IdentityRef)>,
    pub system_assigned: bool,
    /// Client ids (lowercase) of the user-assigned identities IMDS knows.
    pub user_assigned: std::collections::BTreeSet<String>,
    /// Resource ids (lowercase) of the user-assigned identities IMDS knows by resource id.
    pub user_assigned_resources: std::collections::BTreeSet<String>,
    pub tokens: HashMap<String, TokenInfo>,
    /// Outstanding Arc challenge secrets → the key file holding each.
    pub arc_keys: HashMap<String, PathBuf>,
    pub faults: Vec<Fault>,
    pub rate_limits: HashMap<String, (RateLimit, VecDeque<tokio::time::Instant>)>,
    pub requests: BTreeMap<(Server, Option<String>, String, u16), u64>,
    pub tokens_issued: BTreeMap<(Server, String), u64>,
    /// (vault, secret key, version) of every version served at least once: the values are
    /// looked up on demand, so a long benchmark does not keep a copy per request.
    pub served: std::collections::BTreeSet<(String, String, String)>,
    pub issued_tokens: Vec<String>,
    pub token_lifetime: Duration,
}

/// Settings fixed at start.
pub(crate) struct Fixed {
    pub tenant: String,
    pub arc_token_dir: PathBuf,
}

pub(crate) struct EmulatorState {
    pub fixed: Fixed,
    inner: Mutex<Inner>,
}

impl EmulatorState {
    pub fn new(
        fixed: Fixed,
        system_assigned: bool,
        user_assigned: &[String],
        token_lifetime: Duration,
    ) -> EmulatorState {
        EmulatorState {
            fixed,
            inner: Mutex::new(Inner {
                vaults: HashMap::new(),
                revoked: HashSet::new(),
                system_assigned,
                user_assigned: user_assigned
                    .iter()
                    .filter(|c| !is_resource_id(c))
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
                user_assigned_resources: user_assigned
                    .iter()
                    .filter(|c| is_resource_id(c))
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
                tokens: HashMap::new(),
                arc_keys: HashMap::new(),
                faults: Vec::new(),
                rate_limits: HashMap::new(),
                requests: BTreeMap::new(),
                tokens_issued: BTreeMap::new(),
                served: std::collections::BTreeSet::new(),
                issued_tokens: Vec::new(),
                token_lifetime,
            }),
        }
    }

    /// The state, even if a panicking test thread poisoned the lock (the data stays usable).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first fault matching this request, its count consumed.
    pub fn take_fault(&self, server: Server, vault: Option<&str>, path: &str) -> Option<Fault> {
        let mut inner = self.lock();
        let i = inner
            .faults
            .iter()
            .position(|f| f.matches(server, vault, path))?;
        let fault = inner.faults[i].clone();
        if let Some(n) = &mut inner.faults[i].count {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.faults.remove(i);
            }
        }
        Some(fault)
    }

    pub fn count_request(&self, server: Server, vault: Option<&str>, path: &str, status: u16) {
        let key = (server, vault.map(str::to_owned), path.to_owned(), status);
        *self.lock().requests.entry(key).or_default() += 1;
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// 32 lowercase hex characters, like Key Vault's version ids.
pub(crate) fn new_version_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_32_lowercase_hex() {
        let v = new_version_id();
        assert_eq!(v.len(), 32);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
