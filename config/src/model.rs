//! The one typed view of the settings that every other part of akv-sync uses.
//!
//! Everything here is already validated: a `CertificateUrl` is a Key Vault secret URL whose
//! vault and name are safe file-name parts, an `Identity` is one of the three supported kinds,
//! and so on. Code downstream never re-checks the raw JSON.

use std::path::PathBuf;
use std::time::Duration;

/// Default store folder of the 3.x schema.
pub const DEFAULT_STORE_V3: &str = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store";
/// Default store folder of the 1.x/2.x schema.
pub const DEFAULT_STORE_V2: &str = "/var/lib/waagent/Microsoft.Azure.KeyVault";
/// Default polling interval (`pollingIntervalInS` = "3600").
pub const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(3600);
/// The IMDS identity endpoint used when `authenticationSettings` is absent.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity";

/// Which wrapper the settings object was found in. Serialised as its [name](Wrapper::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum Wrapper {
    /// `{ "secretsManagementSettings": … }`
    Bare,
    /// `{ "type": "Microsoft.Compute/virtualMachines/extensions", "properties": { "settings": … } }`
    ArmResource,
    /// `{ "runtimeSettings": [ { "handlerSettings": { "publicSettings": … } } ] }`
    HandlerSettings,
}

impl Wrapper {
    /// Its name in `validate`'s report: `bare`, `armResource`, `handlerSettings`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wrapper::Bare => "bare",
            Wrapper::ArmResource => "armResource",
            Wrapper::HandlerSettings => "handlerSettings",
        }
    }

    /// What it is, for people.
    pub fn description(self) -> &'static str {
        match self {
            Wrapper::Bare => "bare settings",
            Wrapper::ArmResource => "ARM extension resource",
            Wrapper::HandlerSettings => "VM-agent handler settings",
        }
    }
}

impl From<Wrapper> for &'static str {
    fn from(w: Wrapper) -> Self {
        w.as_str()
    }
}

/// Which schema generation the settings use. Serialised as its [name](Schema::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "&'static str")]
pub enum Schema {
    /// 1.x / 2.x: `observedCertificates` is an array of URL strings.
    V2,
    /// 3.x: `observedCertificates` is an array of objects.
    V3,
}

impl Schema {
    /// `1.x/2.x` or `3.x`.
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::V2 => "1.x/2.x",
            Schema::V3 => "3.x",
        }
    }
}

impl From<Schema> for &'static str {
    fn from(s: Schema) -> Self {
        s.as_str()
    }
}

/// The sovereign cloud a vault lives in; it decides the token audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// `*.vault.azure.net`
    Public,
    /// `*.vault.azure.cn`
    China,
    /// `*.vault.usgovcloudapi.net`
    UsGovernment,
    /// `*.managedhsm.azure.net`
    ManagedHsm,
}

impl Cloud {
    /// DNS suffix of the vault hosts of this cloud.
    pub fn suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGovernment => "vault.usgovcloudapi.net",
            Cloud::ManagedHsm => "managedhsm.azure.net",
        }
    }

    /// The token audience (`resource=`) for vaults of this cloud.
    pub fn audience(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::China => "https://vault.azure.cn",
            Cloud::UsGovernment => "https://vault.usgovcloudapi.net",
            Cloud::ManagedHsm => "https://managedhsm.azure.net",
        }
    }

    /// All clouds, for host-name matching.
    pub const ALL: [Cloud; 4] = [
        Cloud::Public,
        Cloud::China,
        Cloud::UsGovernment,
        Cloud::ManagedHsm,
    ];
}

/// A validated Key Vault secret URL: `https://{vault}.{suffix}/secrets/{name}[/{version}]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateUrl {
    /// The URL as written in the settings.
    pub original: String,
    /// The vault name (first DNS label), e.g. `exampleVault`.
    pub vault: String,
    /// The full host, e.g. `examplevault.vault.azure.net`.
    pub host: String,
    /// An explicit port, if the URL had one (the real service never does).
    pub port: Option<u16>,
    /// The cloud, from the host suffix.
    pub cloud: Cloud,
    /// The secret (certificate) name.
    pub name: String,
    /// A pinned version, when the URL has one.
    pub version: Option<String>,
}

impl CertificateUrl {
    /// `https://host[:port]/secrets/name[/version]` without a query string.
    pub fn secret_url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        match &self.version {
            Some(v) => format!("https://{}{}/secrets/{}/{}", self.host, port, self.name, v),
            None => format!("https://{}{}/secrets/{}", self.host, port, self.name),
        }
    }
}

/// A user or group named in `acls`: a name, or a numeric id (serialised as it was written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(untagged)]
pub enum Principal {
    Name(String),
    Id(u32),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Name(n) => f.write_str(n),
            Principal::Id(i) => write!(f, "{i}"),
        }
    }
}

/// One entry of `acls`: read access for a user, a group, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AclGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Principal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Principal>,
}

/// Separate output files (certbot's layout), an akv-sync extension. Each is a file name
/// inside the certificate's store folder; each is refreshed when a new version installs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExtraOutputs {
    /// The leaf certificate alone.
    pub cert: Option<String>,
    /// The intermediates and root, without the leaf.
    pub chain: Option<String>,
    /// Leaf + chain, no key.
    pub fullchain: Option<String>,
    /// The private key alone (PKCS#8 PEM).
    pub privkey: Option<String>,
    /// The leaf certificate alone, as DER (`certDer`).
    pub cert_der: Option<String>,
    /// Key, leaf and chain as PKCS#12 (`pfx`, `pfxPasswordFile`, `pfxFriendlyName`).
    pub pfx: Option<PfxOutput>,
}

/// The PKCS#12 output of a certificate (akv-sync extension): for .NET (Kestrel) and Java
/// (Tomcat, keytool) services that cannot read PEM.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PfxOutput {
    /// A plain file name inside the store folder.
    pub file_name: String,
    /// An absolute path to a root-owned file whose content (without a final newline) is the
    /// password; `None`: the empty password. Checked and read at each conversion, not here
    /// (the settings parser touches no file).
    pub password_file: Option<PathBuf>,
    /// The friendly name (alias) of the key and leaf; `None`: the certificate's name.
    pub friendly_name: Option<String>,
}

impl ExtraOutputs {
    pub fn is_empty(&self) -> bool {
        self.cert.is_none()
            && self.chain.is_none()
            && self.fullchain.is_none()
            && self.privkey.is_none()
            && self.cert_der.is_none()
            && self.pfx.is_none()
    }
}

/// A command to run after a new version is in place (akv-sync extension).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hook {
    /// argv, run without a shell.
    Command(Vec<String>),
    /// `systemctl reload-or-restart <unit>`.
    ReloadUnit(String),
}

/// A hook with its time limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookSpec {
    pub hook: Hook,
    pub timeout: Duration,
}

/// As written in the settings: `command` or `reloadUnit` (the other null), and `timeoutInS`.
impl serde::Serialize for HookSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (command, reload_unit) = match &self.hook {
            Hook::Command(argv) => (Some(argv), None),
            Hook::ReloadUnit(unit) => (None, Some(unit)),
        };
        let mut st = s.serialize_struct("HookSpec", 3)?;
        st.serialize_field("command", &command)?;
        st.serialize_field("reloadUnit", &reload_unit)?;
        st.serialize_field("timeoutInS", &self.timeout.as_secs())?;
        st.end()
    }
}

/// One observed certificate, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObservedCertificate {
    /// JSON path of this entry in the settings, e.g. `secretsManagementSettings.observedCertificates[2]`.
    pub json_path: String,
    pub url: CertificateUrl,
    /// Store folder (`certificateStoreLocation`, or the schema's default).
    pub store: PathBuf,
    /// `customSymbolicLinkName`: a plain file name inside `store`.
    pub link_name: Option<String>,
    /// ACL grants; applied only when `acl_enabled` is set for the whole settings.
    pub acls: Vec<AclGrant>,
    /// Extra outputs (akv-sync extension, per certificate `akvSync.outputs`).
    pub outputs: ExtraOutputs,
    /// Hook for this certificate (akv-sync extension, per certificate `akvSync.onChange`).
    pub hook: Option<HookSpec>,
}

/// Which managed identity to ask for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// System-assigned identity through IMDS (or an IMDS-compatible `msiEndpoint`).
    SystemAssigned { endpoint: String },
    /// A user-assigned identity, by client id.
    UserAssigned { endpoint: String, client_id: String },
    /// A user-assigned identity, by its resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME`),
    /// asked of IMDS as `msi_res_id`.
    UserAssignedByResourceId {
        endpoint: String,
        resource_id: String,
    },
    /// Azure Arc's HIMDS (`localhost:40342`), with its key-file challenge.
    Arc { endpoint: String },
}

impl Identity {
    /// `systemAssigned`, `userAssigned` (by client id or resource id) or `arc`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::SystemAssigned { .. } => "systemAssigned",
            Identity::UserAssigned { .. } | Identity::UserAssignedByResourceId { .. } => {
                "userAssigned"
            }
            Identity::Arc { .. } => "arc",
        }
    }

    /// The identity endpoint, normalised to end in `/metadata/identity` (no `/oauth2/token`).
    pub fn endpoint(&self) -> &str {
        match self {
            Identity::SystemAssigned { endpoint }
            | Identity::UserAssigned { endpoint, .. }
            | Identity::UserAssignedByResourceId { endpoint, .. }
            | Identity::Arc { endpoint } => endpoint,
        }
    }
}

/// `kind` (`systemAssigned`, `userAssigned`, `arc`), `endpoint`, `clientId` (null unless
/// given), and `resourceId` for a user-assigned identity named by its resource id.
impl serde::Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (client_id, resource_id) = match self {
            Identity::UserAssigned { client_id, .. } => (Some(client_id), None),
            Identity::UserAssignedByResourceId { resource_id, .. } => (None, Some(resource_id)),
            Identity::SystemAssigned { .. } | Identity::Arc { .. } => (None, None),
        };
        let mut st = s.serialize_struct("Identity", 4)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("endpoint", self.endpoint())?;
        st.serialize_field("clientId", &client_id)?;
        match resource_id {
            Some(id) => st.serialize_field("resourceId", id)?,
            None => st.skip_field("resourceId")?,
        }
        st.end()
    }
}

/// `loggingSettings` (serialised with the settings' own key names).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoggingSettings {
    /// "fluentd"
    pub logger: String,
    /// host and port from `tcp://host:port`
    pub host: String,
    pub port: u16,
    /// "forward"
    pub format: String,
    /// The Fluentd tag, e.g. "akvvm_service".
    #[serde(rename = "servicename")]
    pub service_name: String,
}

/// Process-wide akv-sync extensions (top-level `akvSyncSettings`), ignored by the original.
/// Serialised with the settings' own key names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    /// Run after any batch of certificates changed together.
    #[serde(rename = "onChange")]
    pub hook: Option<HookSpec>,
    /// Loopback address for `/metrics`, `/healthz`, `/readyz`; off when `None`.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Warn when an installed certificate expires within this many days.
    pub expiry_warning_days: u32,
    /// Keep at most this many versions per certificate; `None` keeps all (the original's behaviour).
    #[serde(rename = "pruneKeepVersions")]
    pub prune_keep: Option<usize>,
    /// At most this many requests in flight toward one vault.
    pub max_concurrency_per_vault: usize,
    /// Fraction of the polling interval used to spread checks (0.0 to 1.0).
    #[serde(rename = "pollingJitter")]
    pub jitter: f64,
    /// Give principals granted in `acls` traverse-only entries on the folders above their
    /// store that keep them out (`traverseAncestors`, default true).
    pub traverse_ancestors: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            hook: None,
            metrics_address: None,
            expiry_warning_days: 14,
            prune_keep: None,
            max_concurrency_per_vault: 16,
            jitter: 0.1,
            traverse_ancestors: true,
        }
    }
}

/// The whole, validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub wrapper: Wrapper,
    pub schema: Schema,
    pub polling_interval: Duration,
    pub require_initial_sync: bool,
    pub acl_enabled: bool,
    pub certificates: Vec<ObservedCertificate>,
    pub identity: Identity,
    pub logging: Option<LoggingSettings>,
    pub agent: AgentSettings,
}
