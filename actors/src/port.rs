//! The small traits through which the reconciler reaches the outside world: a token source
//! (managed identity), a secret source (Key Vault), an installer (material + store) and a
//! status sink (VM agent, systemd). The binary provides real adapters; tests provide fakes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use akv_sync_config::{CertificateUrl, ObservedCertificate};
use zeroize::Zeroizing;

/// An access token. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Token {
    /// Generation number, unique per fetched token in this process: lets a watcher say
    /// "this token was refused" without comparing secrets.
    pub generation: u64,
    secret: Arc<Zeroizing<String>>,
}

impl Token {
    pub fn new(generation: u64, secret: String) -> Self {
        Token {
            generation,
            secret: Arc::new(Zeroizing::new(secret)),
        }
    }

    /// The bearer value. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(#{} <redacted>)", self.generation)
    }
}

/// A token as a token source returns it.
pub struct FetchedToken {
    pub secret: String,
    /// Lifetime from now (`expires_in`).
    pub expires_in: Duration,
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A secret as Key Vault returns it. `Debug` never shows the value.
pub struct SecretBundle {
    pub value: Zeroizing<String>,
    pub content_type: String,
    /// The version: the last path segment of `id`.
    pub version: String,
    /// `attributes.enabled`
    pub enabled: bool,
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBundle")
            .field("content_type", &self.content_type)
            .field("version", &self.version)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// What a [`SecretSource`] found.
#[derive(Debug)]
pub enum Fetched {
    /// The answer is the version the caller said is installed: its value was not kept (an
    /// unchanged poll need not copy, hold and zeroize the secret).
    Unchanged { version: String, enabled: bool },
    /// Another version (or the caller named none): the whole secret.
    New(SecretBundle),
}

impl Fetched {
    pub fn version(&self) -> &str {
        match self {
            Fetched::Unchanged { version, .. } => version,
            Fetched::New(b) => &b.version,
        }
    }

    /// `attributes.enabled`
    pub fn enabled(&self) -> bool {
        match self {
            Fetched::Unchanged { enabled, .. } => *enabled,
            Fetched::New(b) => b.enabled,
        }
    }
}

/// How a failed request should be treated. Decides retry and what the user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 401: the token was refused; refresh it once and retry.
    Unauthorized,
    /// 403: the identity lacks permission (or the version is disabled).
    Forbidden,
    /// 404: no such secret / version.
    NotFound,
    /// 429: throttled; `retry_after` when the server said so.
    Throttled { retry_after: Option<Duration> },
    /// 5xx, connection errors, timeouts, garbage bodies: try again later.
    Transient,
    /// The answer was understood and is wrong in a way retrying cannot fix soon
    /// (e.g. a settings-level problem). Still retried in steady state at the polling interval.
    Permanent,
}

/// An error from a token or secret source. `message` is for humans and never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub class: ErrorClass,
    pub message: String,
}

impl SourceError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        SourceError {
            class,
            message: message.into(),
        }
    }
}

/// Managed identity: fetches a token for an audience. Retries specific to the identity
/// service (IMDS 410 for up to 70 s, …) belong in the implementation.
pub trait TokenSource: Send + Sync + 'static {
    fn fetch(
        &self,
        audience: &str,
    ) -> impl Future<Output = Result<FetchedToken, SourceError>> + Send;
}

/// Key Vault: fetches the current (or pinned) version of a secret.
pub trait SecretSource: Send + Sync + 'static {
    /// `installed`: the version already on disk, when the caller will not use the value of
    /// that same version. A source may then answer [`Fetched::Unchanged`] if the answer is
    /// that version; it may always answer [`Fetched::New`].
    fn get(
        &self,
        url: &CertificateUrl,
        token: &Token,
        installed: Option<&str>,
    ) -> impl Future<Output = Result<Fetched, SourceError>> + Send;
}

/// Why preparing or installing a certificate failed, for code (the message is for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallFailure {
    /// The secret's content is not something the store can install (not a certificate and
    /// key, a chain that does not verify, a key that matches no certificate, an output that
    /// cannot be rendered): retried, as a new version may fix it.
    Material,
    /// The settings or the host must change first (unknown ACL user, unsafe name or store
    /// path, a planted link): retrying cannot help, so the initial-sync gate fails such a
    /// certificate at once.
    Refused,
    /// The disk failed (I/O error, read-only, full): retried.
    Store,
    /// The writer stopped, or its task died: retried.
    Writer,
}

impl InstallFailure {
    /// Retrying cannot help until the settings or the host change.
    pub fn is_fatal(self) -> bool {
        self == InstallFailure::Refused
    }
}

/// An error from preparing or installing a certificate.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct InstallError {
    pub kind: InstallFailure,
    pub message: String,
}

impl InstallError {
    pub fn new(kind: InstallFailure, message: impl Into<String>) -> Self {
        InstallError {
            kind,
            message: message.into(),
        }
    }
}

/// What an install did on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallReport {
    /// Nothing written: the same version and bytes were already in place.
    Unchanged,
    /// Only permissions, links or extra outputs were repaired.
    Repaired,
    /// A new version file is in place and the links point to it.
    Installed { previous_version: Option<String> },
}

/// Material + store. `prepare` is CPU work (parse, verify, order) and runs on the blocking
/// pool inside the watcher; `install` and `installed_version` touch the disk and run only in
/// the writer actor, one at a time.
pub trait Installer: Send + Sync + 'static {
    /// A certificate ready to write (PEM bytes, …).
    type Prepared: Send + 'static;

    fn prepare(
        &self,
        cert: &ObservedCertificate,
        secret: SecretBundle,
    ) -> Result<Self::Prepared, InstallError>;

    fn install(
        &self,
        cert: &ObservedCertificate,
        version: &str,
        prepared: Self::Prepared,
    ) -> Result<InstallReport, InstallError>;

    /// The version the link points at now, if any.
    fn installed_version(&self, cert: &ObservedCertificate)
    -> Result<Option<String>, InstallError>;

    /// The installed version, when the installer can vouch for it without reading the
    /// store (nothing it depends on changed since the installer last read it): an unchanged
    /// poll then needs neither the writer nor the disk. `None` (the default): ask the writer
    /// for [`installed_version`](Self::installed_version). Called on the watcher's task, so
    /// it must be cheap (a `stat`, not a read).
    fn known_version(&self, _cert: &ObservedCertificate) -> Option<String> {
        None
    }

    /// The end of a run of installs: make them durable. The writer calls it once per run
    /// and answers the run's installs only after it.
    fn commit(&self) {}
}

/// Readiness and the overall state, as the VM agent and systemd want them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Transitioning,
    Success,
    Warning,
    Error,
}

impl State {
    /// The VM agent's word for the state.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Transitioning => "transitioning",
            State::Success => "success",
            State::Warning => "warning",
            State::Error => "error",
        }
    }
}

/// What the gate reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub message: String,
    /// The certificates whose first download failed, in id order, at most
    /// [`LISTED_FAILURES`] of them (the VM agent lists each in `substatus`).
    pub failures: Vec<Failure>,
    /// How many certificates failed in all (`failures` may list fewer).
    pub failed_count: usize,
}

impl Status {
    /// A status that lists no failed certificate.
    pub fn new(state: State, message: impl Into<String>) -> Self {
        Status {
            state,
            message: message.into(),
            failures: Vec::new(),
            failed_count: 0,
        }
    }
}

/// One certificate that failed, and why (no secret in `why`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub id: String,
    pub why: String,
}

/// At most this many failed certificates are listed in a [`Status`].
pub const LISTED_FAILURES: usize = 50;

/// Where status goes (VM-agent status file, sd_notify, logs).
pub trait StatusSink: Send + Sync + 'static {
    fn report(&self, status: &Status);
}

/// Observations for metrics, logs and hooks. Every method has a no-op default.
pub trait Observer: Send + Sync + 'static {
    /// A check of a certificate ended.
    fn checked(&self, _cert: &ObservedCertificate, _outcome: &CheckOutcome) {}
    /// A request to Key Vault or the identity service ended with this HTTP-ish class.
    fn token_refreshed(&self) {}
    /// The writer installed a batch of new versions together (for hooks: one run per batch).
    fn installed_batch(&self, _batch: &[NewVersion]) {}
}

/// A new version that the writer put in place.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub cert: Arc<ObservedCertificate>,
    pub version: String,
    pub previous_version: Option<String>,
}

/// The result of one check of one certificate.
#[derive(Debug, Clone)]
pub enum CheckOutcome {
    /// The installed version is current; nothing was written.
    Current { version: String },
    /// A new version (or a repair) was written.
    Updated {
        version: String,
        report: InstallReport,
    },
    /// The check failed; the last good files stay.
    Failed { error: String, consecutive: u32 },
}

/// An observer that observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;
impl Observer for NoObserver {}
