//! A watcher: one per observed certificate. It downloads the certificate's secret, hands it
//! to the installer when the version changed, and repeats every polling interval.
//!
//! Reconcile is an idempotent function of (what Key Vault has, what the store has): a check
//! reads the version on disk, asks Key Vault for the current version, and writes only when
//! they differ. Retries and scheduling live around it, in [`Watcher::run`].

use std::sync::Arc;
use std::time::Duration;

use akv_sync_config::ObservedCertificate;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::{MAX_ATTEMPTS, initial_sync_delay, jittered};
use crate::gate::GateHandle;
use crate::limiter::Vaults;
use crate::port::{
    CheckOutcome, ErrorClass, Fetched, InstallFailure, InstallReport, Installer, Observer,
    SecretSource, SourceError,
};
use crate::token::TokenHandle;
use crate::writer::WriterHandle;

/// Everything watchers share: the sources, the actors' handles and the schedule.
pub struct Shared<S, I: Installer> {
    pub source: Arc<S>,
    pub installer: Arc<I>,
    pub tokens: TokenHandle,
    pub writer: WriterHandle<I>,
    pub vaults: Arc<Vaults>,
    pub gate: GateHandle,
    pub observer: Arc<dyn Observer>,
    pub polling_interval: Duration,
    /// Fraction of the interval by which each wait is spread (fleet-friendly polling).
    pub jitter: f64,
    /// First downloads start at a random moment within this window (zero with
    /// `requireInitialSync`, where someone waits for them), so that a fleet restarted at
    /// once does not hit its vault in the same second.
    pub startup_spread: Duration,
    /// Attempts of a first download before the gate gives up on it: [`MAX_ATTEMPTS`], or
    /// no limit ([`first_sync_attempts`]).
    pub first_sync_attempts: u32,
    /// Checks between "ask Key Vault" and "the writer is done" ([`PIPELINE_DEPTH`]).
    pub pipeline: tokio::sync::Semaphore,
    /// Checks running at all ([`CHECKS_IN_FLIGHT`]).
    pub checks: tokio::sync::Semaphore,
}

/// How many checks may be past reading the installed version at once: downloading,
/// converting, or waiting for the writer. Downloads and conversion outpace the writer
/// (fsync), so without a bound an initial sync held nearly every certificate's converted
/// PEM in memory at once (about 15 KiB each). As many as the writer's queue holds, which is
/// more than the vault limiters let through for up to 16 vaults at the default concurrency.
pub const PIPELINE_DEPTH: usize = 256;

/// How many checks may run at once, reading the installed version included: enough to keep
/// the [`PIPELINE_DEPTH`] places busy while as many more read the disk through the writer.
/// Without a bound, each of thousands of watchers held a check's state (about 800 bytes)
/// from start-up until its turn at the writer came.
pub const CHECKS_IN_FLIGHT: usize = 2 * PIPELINE_DEPTH;

/// Steady-state polls wake on a grid of this step, shared by every watcher of the process.
pub const POLL_GRID: Duration = Duration::from_secs(1);

/// `deadline` rounded up to the next point of the [`POLL_GRID`]. Watchers whose polls fall
/// due within the same second then wake together: one timer wake-up and one burst of
/// requests on the shared connections instead of one of each per certificate — thousands
/// of certificates spread over an interval otherwise cost more in thread wake-ups than in
/// the requests themselves. The grid's origin is the first call in the process, so agents
/// across a fleet keep their own phases (and their jitter, which is far coarser).
pub fn on_grid(deadline: tokio::time::Instant) -> tokio::time::Instant {
    static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    let Some(offset) = deadline.checked_duration_since(origin) else {
        return deadline;
    };
    let step = POLL_GRID.as_nanos();
    let rounded = offset.as_nanos().div_ceil(step) * step;
    crate::clock::after(
        origin,
        Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX)),
    )
}

/// The start-up window: none when the initial sync is awaited; else the jitter's share of the
/// interval, at most 60 s.
pub fn startup_spread(require_initial_sync: bool, interval: Duration, jitter: f64) -> Duration {
    if require_initial_sync {
        Duration::ZERO
    } else {
        interval
            .mul_f64(jitter.clamp(0.0, 1.0))
            .min(Duration::from_secs(60))
    }
}

/// How many times the daemon tries a certificate's first download before the gate reports
/// it failed. The 1.x/2.x documentation says `requireInitialSync` retries the first download
/// indefinitely, so settings in that schema get no limit (the gate stays `transitioning`
/// until the certificate arrives, unless the failure is fatal); the 3.x schema gets
/// [`MAX_ATTEMPTS`].
pub fn first_sync_attempts(schema: akv_sync_config::Schema, require_initial_sync: bool) -> u32 {
    if require_initial_sync && schema == akv_sync_config::Schema::V2 {
        u32::MAX
    } else {
        MAX_ATTEMPTS
    }
}

/// Why a check failed. The message is for humans and names no secret; `cause` is for code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CheckError {
    pub message: String,
    pub cause: Cause,
}

impl CheckError {
    /// Retrying cannot help until the settings or the host change.
    pub fn is_fatal(&self) -> bool {
        matches!(self.cause, Cause::Install(kind) if kind.is_fatal())
    }
}

/// Where a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Key Vault answered with an error, or could not be reached.
    Vault(ErrorClass),
    /// No token: the identity endpoint failed.
    Token(ErrorClass),
    /// The version Key Vault answered is disabled.
    Disabled,
    /// The material or the store refused the certificate.
    Install(InstallFailure),
    /// The conversion task died.
    Conversion,
}

impl From<SourceError> for CheckError {
    fn from(e: SourceError) -> Self {
        CheckError {
            message: e.message,
            cause: Cause::Vault(e.class),
        }
    }
}

impl From<crate::port::InstallError> for CheckError {
    fn from(e: crate::port::InstallError) -> Self {
        CheckError {
            message: e.message,
            cause: Cause::Install(e.kind),
        }
    }
}

/// The id of an observed certificate in the gate, status messages, logs and reloads:
/// `vault/name in store`. The store is part of it: the same certificate may be observed in
/// several stores (two services, two folders), and each is installed, reported and stopped
/// on its own.
pub fn certificate_id(cert: &ObservedCertificate) -> String {
    cert.id()
}

/// One observed certificate's loop.
pub struct Watcher<S, I: Installer> {
    pub cert: Arc<ObservedCertificate>,
    pub shared: Arc<Shared<S, I>>,
    /// The gate's id ([`certificate_id`]).
    id: String,
    /// `vault/name`, the `certificate` field of log lines (which carry `store` beside it).
    name: String,
}

impl<S: SecretSource, I: Installer> Watcher<S, I> {
    pub fn new(cert: Arc<ObservedCertificate>, shared: Arc<Shared<S, I>>) -> Self {
        let id = certificate_id(&cert);
        let name = cert.secret_id();
        Watcher {
            cert,
            shared,
            id,
            name,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// First download with up to `max_attempts` tries, reporting to the gate. Returns the
    /// last outcome. Cancelled → `None`.
    pub async fn first_sync(
        &self,
        max_attempts: u32,
        cancel: &CancellationToken,
    ) -> Option<Result<CheckOutcome, CheckError>> {
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let result = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = self.admitted_check(true) => r,
            };
            match result {
                Ok(outcome) => {
                    // Observers first: once the gate says ready, metrics must already show
                    // this certificate's success (`/readyz` reads both).
                    self.shared.observer.checked(&self.cert, &outcome);
                    self.shared.gate.installed(&self.id);
                    return Some(Ok(outcome));
                }
                Err(err) => {
                    self.shared.observer.checked(
                        &self.cert,
                        &CheckOutcome::Failed {
                            error: err.message.clone(),
                            consecutive: attempt,
                        },
                    );
                    if err.is_fatal() || attempt >= max_attempts {
                        warn!(certificate = %self.name, store = %self.cert.store.display(), vault = %self.cert.url.vault, name = %self.cert.url.name,
                              attempts = attempt, error = %err.message, "first download failed; giving up for the initial sync");
                        self.shared.gate.failed(
                            &self.id,
                            &format!("{} (after {attempt} attempt(s))", err.message),
                        );
                        return Some(Err(err));
                    }
                    let wait = jittered(initial_sync_delay(attempt), 0.2);
                    warn!(certificate = %self.name, store = %self.cert.store.display(), vault = %self.cert.url.vault, name = %self.cert.url.name,
                          attempt, max_attempts, retry_in_s = wait.as_secs_f64(), error = %err.message,
                          "first download failed; will retry");
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// [`Watcher::check`], once one of the [`CHECKS_IN_FLIGHT`] places is free.
    ///
    /// A check's future (writer round trip, request, conversion) is several times larger
    /// than a waiting watcher, and a spawned task is as large as its future's largest state:
    /// boxed, the check's state is allocated only while it runs, and the places bound how
    /// many run at once (at start-up every watcher wants its first check at the same time).
    async fn admitted_check(&self, force: bool) -> Result<CheckOutcome, CheckError> {
        let _place = self
            .shared
            .checks
            .acquire()
            .await
            .expect("the checks semaphore is never closed");
        Box::pin(self.check(force)).await
    }

    /// The daemon loop: first sync, then a check every polling interval until cancelled.
    /// The supervisor has told the gate to track this certificate before spawning it.
    pub async fn run(self, cancel: CancellationToken) {
        let spread = self.shared.startup_spread;
        // Only a restart is spread: a certificate already on disk can wait its turn, one
        // that is not (a new host, a new entry) is fetched at once.
        // A store that cannot be read counts as not installed: the first check says why.
        let restart = !spread.is_zero()
            && tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.on_disk() => matches!(r, Ok(Some(_))),
            };
        if restart {
            let wait = spread.mul_f64(rand::random::<f64>());
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let Some(first) = self
            .first_sync(self.shared.first_sync_attempts, &cancel)
            .await
        else {
            return;
        };
        // The gate keeps a certificate installed once it was (see `GateHandle::installed`):
        // it is told once, not after every successful poll.
        let mut gate_told = first.is_ok();
        let interval = self.shared.polling_interval;
        let mut failures: u32 = 0;
        loop {
            // After a failure, retry sooner (growing), never later than the interval.
            let wake = if failures == 0 {
                on_grid(crate::clock::after(
                    tokio::time::Instant::now(),
                    jittered(interval, self.shared.jitter),
                ))
            } else {
                crate::clock::after(
                    tokio::time::Instant::now(),
                    jittered(initial_sync_delay(failures).min(interval), 0.2),
                )
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.admitted_check(false) => r,
            };
            let outcome = match result {
                Ok(outcome) => {
                    failures = 0;
                    outcome
                }
                Err(err) => {
                    failures += 1;
                    warn!(certificate = %self.name, store = %self.cert.store.display(), vault = %self.cert.url.vault, name = %self.cert.url.name,
                          consecutive_failures = failures, error = %err.message,
                          "check failed; the installed files stay as they are");
                    CheckOutcome::Failed {
                        error: err.message,
                        consecutive: failures,
                    }
                }
            };
            self.shared.observer.checked(&self.cert, &outcome);
            if !gate_told && !matches!(outcome, CheckOutcome::Failed { .. }) {
                self.shared.gate.installed(&self.id);
                gate_told = true;
            }
        }
    }

    /// One reconcile. `force` installs even when the version on disk is current, so that
    /// permissions, links and extra outputs are repaired (the store writes no content then).
    pub async fn check(&self, force: bool) -> Result<CheckOutcome, CheckError> {
        let shared = &self.shared;
        let cert = &self.cert;
        // A forced check installs whatever it downloads (the store writes nothing when the
        // bytes are already there), so it need not read the disk first.
        let on_disk = if force { None } else { self.on_disk().await? };

        // A pinned version never changes: once it is on disk, Key Vault is not asked again.
        if let (Some(pinned), Some(disk)) = (&cert.url.version, &on_disk)
            && pinned == disk
            && !force
        {
            return Ok(CheckOutcome::Current {
                version: disk.clone(),
            });
        }

        let _slot = shared
            .pipeline
            .acquire()
            .await
            .expect("the pipeline semaphore is never closed");
        let fetched = self.fetch(on_disk.as_deref()).await?;
        if !fetched.enabled() {
            return Err(CheckError {
                message: format!(
                    "version {} of secret {} in vault {} is disabled",
                    fetched.version(),
                    cert.url.name,
                    cert.url.vault
                ),
                cause: Cause::Disabled,
            });
        }
        let secret = match fetched {
            Fetched::New(secret)
                if on_disk.as_deref() != Some(secret.version.as_str()) || force =>
            {
                secret
            }
            current => {
                let version = current.version().to_owned();
                debug!(certificate = %self.name, store = %self.cert.store.display(), version = %version, "current");
                return Ok(CheckOutcome::Current { version });
            }
        };
        let version = secret.version.clone();

        let installer = shared.installer.clone();
        let c = cert.clone();
        let prepared = tokio::task::spawn_blocking(move || installer.prepare(&c, secret))
            .await
            .map_err(|e| CheckError {
                message: format!("conversion task failed: {e}"),
                cause: Cause::Conversion,
            })??;
        let report = shared
            .writer
            .install(cert.clone(), version.clone(), prepared)
            .await?;
        match &report {
            InstallReport::Installed { previous_version } => {
                info!(certificate = %self.name, store = %self.cert.store.display(), vault = %cert.url.vault, name = %cert.url.name, version = %version,
                      previous_version = previous_version.as_deref().unwrap_or("none"), "installed new version")
            }
            InstallReport::Repaired => {
                info!(certificate = %self.name, store = %self.cert.store.display(), version = %version, "repaired permissions or links")
            }
            InstallReport::Unchanged => {
                debug!(certificate = %self.name, store = %self.cert.store.display(), version = %version, "current")
            }
        }
        Ok(CheckOutcome::Updated { version, report })
    }

    /// The version on disk: as the installer knows it without reading, else read by the
    /// writer.
    async fn on_disk(&self) -> Result<Option<String>, CheckError> {
        if let Some(version) = self.shared.installer.known_version(&self.cert) {
            return Ok(Some(version));
        }
        Ok(self
            .shared
            .writer
            .installed_version(self.cert.clone())
            .await?)
    }

    /// GET the secret through the vault's limiter, refreshing the token once on 401.
    async fn fetch(&self, installed: Option<&str>) -> Result<Fetched, CheckError> {
        let shared = &self.shared;
        let url = &self.cert.url;
        let audience = url.cloud.audience();
        let limiter = shared.vaults.limiter(&url.host);
        let no_token = |e: SourceError| CheckError {
            message: format!("no token for {audience}: {}", e.message),
            cause: Cause::Token(e.class),
        };
        let mut token = shared.tokens.get(audience).await.map_err(no_token)?;
        let mut refreshed = false;
        loop {
            let permit = limiter.admit().await;
            let result = shared.source.get(url, &token, installed).await;
            drop(permit);
            match result {
                Ok(secret) => {
                    limiter.succeeded();
                    return Ok(secret);
                }
                Err(e) if e.class == ErrorClass::Unauthorized && !refreshed => {
                    refreshed = true;
                    token = shared
                        .tokens
                        .refresh(audience, &token)
                        .await
                        .map_err(no_token)?;
                }
                Err(e) => {
                    if let ErrorClass::Throttled { retry_after } = e.class {
                        let pause = limiter.throttled(retry_after);
                        warn!(vault = %url.vault, pause_s = pause.as_secs_f64(), "vault throttled (429); pausing every request to it");
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn polls_due_within_one_step_of_the_grid_wake_together() {
        let now = tokio::time::Instant::now();
        let a = on_grid(now + Duration::from_millis(10_100));
        let b = on_grid(now + Duration::from_millis(10_900));
        assert_eq!(a, b, "both round up to the same point");
        assert!(a >= now + Duration::from_millis(10_900));
        assert!(a <= now + Duration::from_millis(10_100) + POLL_GRID);
        let c = on_grid(now + Duration::from_millis(11_100));
        assert_eq!(c - a, POLL_GRID, "the next point is one step later");
        assert_eq!(on_grid(a), a, "a point of the grid stays where it is");
    }
}
