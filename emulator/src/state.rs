//! Everything the emulator knows (vaults, identities, tokens, faults, counters) and the
//! [`Control`] handle that changes it.
//!
//! One `std::sync::Mutex` guards it all: this is a test double, every critical section is a
//! few map operations with no `.await` inside, and a single lock keeps each request's view
//! consistent (a rotation is never half-visible). Slow work (key generation) happens before
//! the lock is taken.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::generator::{self, CertSpec, GenerateError};

/// Which emulated service a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Server {
    Vault,
    Imds,
    Arc,
    Admin,
}

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
    fn normalized(&self) -> IdentityRef {
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

/// A vault's request limit: at most `per10s` authenticated secret requests in any 10 seconds;
/// past it, 429 `Throttled`, with `Retry-After: retry_after` when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub per10s: u32,
    #[serde(default)]
    pub retry_after: Option<u32>,
}

/// Which service a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FaultTarget {
    #[default]
    Any,
    Vault,
    Imds,
    Arc,
}

/// What a matching request gets instead of (or before) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer `status` with `body` (or a default error body in the service's own shape).
    #[serde(rename_all = "camelCase")]
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        retry_after: Option<u32>,
    },
    /// Wait, then answer normally.
    #[serde(rename_all = "camelCase")]
    Delay { millis: u64 },
    /// Close the connection without an answer.
    Reset,
    /// 200 with the usual headers and a body that is not JSON.
    GarbageBody,
    /// The normal answer, cut off halfway through the body (`Content-Length` promises all of it).
    TruncatedBody,
}

/// A fault to inject. `path` is matched against the request path (no query) with `*` standing
/// for any run of characters; `vault`, when set, limits it to that vault (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub target: FaultTarget,
    #[serde(default = "any_path")]
    pub path: String,
    #[serde(default)]
    pub vault: Option<String>,
    pub action: FaultAction,
    /// How many requests it applies to; `None` = every request until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

fn any_path() -> String {
    "*".to_owned()
}

impl Fault {
    /// A fault on every request of `target` whose path matches `path`, forever.
    pub fn new(target: FaultTarget, path: &str, action: FaultAction) -> Fault {
        Fault {
            target,
            path: path.to_owned(),
            vault: None,
            action,
            count: None,
        }
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> Fault {
        self.count = Some(n);
        self
    }

    /// Apply only to requests for this vault.
    pub fn on_vault(mut self, vault: &str) -> Fault {
        self.vault = Some(vault.to_ascii_lowercase());
        self
    }

    fn matches(&self, server: Server, vault: Option<&str>, path: &str) -> bool {
        let target_ok = match self.target {
            FaultTarget::Any => server != Server::Admin,
            FaultTarget::Vault => server == Server::Vault,
            FaultTarget::Imds => server == Server::Imds,
            FaultTarget::Arc => server == Server::Arc,
        };
        let vault_ok = match (&self.vault, vault) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        target_ok && vault_ok && glob_match(&self.path, path)
    }
}

/// `*` matches any run of characters (including `/`); everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Request counts: by (server, vault, path, status), and tokens issued by (server, identity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub requests: Vec<RequestCount>,
    pub tokens_issued: Vec<TokenCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    pub server: Server,
    pub vault: Option<String>,
    pub path: String,
    /// The HTTP status answered; 0 when the connection was reset instead.
    pub status: u16,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCount {
    pub server: Server,
    pub identity: String,
    pub count: u64,
}

impl Counters {
    /// Requests to `vault` (any path) answered with `status` (or any status when `None`).
    pub fn vault_requests(&self, vault: &str, status: Option<u16>) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.server == Server::Vault)
            .filter(|r| r.vault.as_deref() == Some(&vault.to_ascii_lowercase()))
            .filter(|r| status.is_none_or(|s| s == r.status))
            .map(|r| r.count)
            .sum()
    }

    /// Requests to `server` answered with `status` (or any status when `None`).
    pub fn server_requests(&self, server: Server, status: Option<u16>) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.server == server && status.is_none_or(|s| s == r.status))
            .map(|r| r.count)
            .sum()
    }

    /// Tokens issued by any service to `identity` (its display form: `system`, `user:<id>`, `arc`).
    pub fn tokens_for(&self, identity: &IdentityRef) -> u64 {
        let key = identity.to_string();
        self.tokens_issued
            .iter()
            .filter(|t| t.identity == key)
            .map(|t| t.count)
            .sum()
    }
}

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

pub(crate) struct Shared {
    pub fixed: Fixed,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(
        fixed: Fixed,
        system_assigned: bool,
        user_assigned: &[String],
        token_lifetime: Duration,
    ) -> Shared {
        Shared {
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
    pub(crate) shared: Arc<Shared>,
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

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob_match("*", "/secrets/c1"));
        assert!(glob_match("/secrets/*", "/secrets/c1/abc"));
        assert!(glob_match("/secrets/c1*", "/secrets/c1/"));
        assert!(glob_match("*/token", "/metadata/identity/oauth2/token"));
        assert!(glob_match("/a*c*e", "/abcde"));
        assert!(!glob_match("/secrets/c1", "/secrets/c1/"));
        assert!(!glob_match("/secrets/c2*", "/secrets/c1"));
        assert!(!glob_match("/a*b*a", "/a"));
    }

    #[test]
    fn version_ids_are_32_lowercase_hex() {
        let v = new_version_id();
        assert_eq!(v.len(), 32);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn counted_fault_is_used_up() {
        let shared = Shared::new(
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
