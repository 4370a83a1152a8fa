//! What the parser returns besides the model: errors (with a kind tests match on, a JSON
//! path, what was found and what to do), warnings, and the parsed result.

use crate::model::Settings;

/// What kind of mistake a [`ConfigError`] reports. Tests match on this, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not text: neither UTF-8 nor UTF-16 with a byte-order mark.
    NotText,
    /// Not JSON at all.
    Syntax,
    /// The settings are a JSON string that holds JSON (double-encoded).
    JsonInString,
    /// `\"` escapes where plain quotes belong (PowerShell).
    EscapedQuotes,
    /// No recognisable settings object / wrapper.
    NoSettings,
    /// A value has the wrong JSON type.
    WrongType,
    /// A required key is absent.
    Missing,
    /// `authenticationSettings` inside `secretsManagementSettings`, or outside `settings` of an ARM resource.
    MisplacedAuthenticationSettings,
    /// `msiClientId` holds a resource id that is not one of a user-assigned identity
    /// (`/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`).
    BadResourceId,
    /// `msiClientId` is not a GUID.
    BadClientId,
    /// `msiEndpoint` is not an http(s) URL.
    BadEndpoint,
    /// A certificate URL uses `/certificates/` instead of `/secrets/`.
    CertificatesPath,
    /// A certificate URL is not https.
    NotHttps,
    /// A certificate URL's host is not a Key Vault host.
    NotVaultHost,
    /// A certificate URL is malformed in some other way.
    BadUrl,
    /// A `/secrets/` URL on a Managed HSM (`*.managedhsm.azure.net`), which holds keys only:
    /// a certificate and its secret live in a Key Vault.
    ManagedHsmSecret,
    /// `pollingIntervalInS` is not a positive integer.
    BadPollingInterval,
    /// A name would escape the store folder (`/`, `..`, NUL).
    UnsafeName,
    /// A store location that is not an absolute path.
    BadStoreLocation,
    /// An `acls` entry is malformed (neither user nor group, wrong type).
    BadAcl,
    /// `loggingSettings` is unusable.
    BadLogging,
    /// An `akvSyncSettings` / per-certificate `akvSync` value is unusable.
    BadExtension,
    /// Two observed certificates would write the same file or link.
    Conflict,
    /// A value still holds a placeholder from the documentation (`<examplekv>`, `xxxxxx-xxxx-…`).
    Placeholder,
    /// An ACL user or group that does not exist on this host. Not produced by `parse` (which
    /// is pure): host checks such as `akv-sync validate` report it with this kind.
    UnknownPrincipal,
}

/// One settings error: where, what was found, what was expected, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub kind: ErrorKind,
    /// JSON path, e.g. `secretsManagementSettings.observedCertificates[1].url`.
    pub path: String,
    /// The whole human message: what was found, what was expected, and a hint.
    pub message: String,
}

/// A warning about the settings (unknown key, ignored Windows-only key, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

/// A successful parse: the model plus warnings.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The settings, without the certificates refused in `refused`.
    pub settings: Settings,
    pub warnings: Vec<Warning>,
    /// Mistakes inside single observed certificates (their paths lie in
    /// `…observedCertificates[N]`, see [`crate::certificate_entry`]): those certificates are
    /// left out of `settings`, the others sync. A mistake anywhere else fails the whole parse.
    pub refused: Vec<ConfigError>,
}
