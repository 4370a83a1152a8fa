//! Managed identity: tokens from IMDS (Azure VMs) or from Azure Arc's HIMDS (SPEC §2.1).
//!
//! - IMDS: `GET {endpoint}/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]` with
//!   `Metadata: true`; a user-assigned identity named by its resource id is asked for with
//!   `&msi_res_id=…` (URL-encoded) instead of `client_id`. 404, 410, 429 and 5xx are retried with exponential backoff for about
//!   70 s (IMDS asks callers to keep retrying 410 that long while it starts).
//! - Arc: the first request is answered 401 with `WWW-Authenticate: Basic realm=<key file>`;
//!   the key file must lie in `/var/opt/azcmagent/tokens/`, end in `.key` and hold at most
//!   4096 bytes; the request is repeated with `Authorization: Basic <file contents>`. Any
//!   other path is refused (a hostile local server must not make us read arbitrary files):
//!   the file is opened without following links and without blocking, and checked on the
//!   opened descriptor (a regular `.key` file of at most 4096 bytes), off the async threads.
//! - Answers are read up to 64 KiB ([`crate::azure::capped::IDENTITY_MAX`]); redirects are refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use akv_sync_actors::{ErrorClass, FetchedToken, SourceError, TokenSource};
use akv_sync_config::Identity;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::azure::capped::{IDENTITY_MAX, ReadError, read_capped, redirect_refused};

/// `AKV_SYNC_IMDS_ENDPOINT`: replaces the IMDS address (system- and user-assigned identities).
pub const ENV_IMDS_ENDPOINT: &str = "AKV_SYNC_IMDS_ENDPOINT";
/// `AKV_SYNC_ARC_ENDPOINT`: replaces the Arc HIMDS address.
pub const ENV_ARC_ENDPOINT: &str = "AKV_SYNC_ARC_ENDPOINT";
/// Where Arc's HIMDS puts its challenge key files.
pub const ARC_TOKEN_DIR: &str = "/var/opt/azcmagent/tokens";
const ARC_KEY_MAX: u64 = 4096;

/// Waits between IMDS retries: 1 + 2 + 4 + 8 + 16 + 32 = 63 s, then about 70 s in all.
const IMDS_RETRY_WAITS: [u64; 6] = [1, 2, 4, 8, 16, 32];

/// The identity client.
pub struct IdentityClient {
    http: reqwest::Client,
    kind: Kind,
    endpoint: String,
    arc_token_dir: PathBuf,
    observer: Option<std::sync::Arc<dyn super::RequestObserver>>,
}

enum Kind {
    /// `None`: the system-assigned identity.
    Imds {
        user: Option<UserAssigned>,
    },
    Arc,
}

/// How a user-assigned identity is named to IMDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAssigned {
    /// `client_id=<GUID>`
    ClientId(String),
    /// `msi_res_id=/subscriptions/…/userAssignedIdentities/NAME`
    ResourceId(String),
}

impl UserAssigned {
    /// The IMDS query parameter and its value.
    pub fn query(&self) -> (&'static str, &str) {
        match self {
            UserAssigned::ClientId(id) => ("client_id", id),
            UserAssigned::ResourceId(id) => ("msi_res_id", id),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// IMDS sends numbers as strings; accept both.
    #[serde(default, deserialize_with = "string_or_number")]
    expires_in: Option<u64>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        N(u64),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::S(s)) => s.trim().parse().ok(),
        Some(N::N(n)) => Some(n),
        None => None,
    })
}

impl IdentityClient {
    /// For the identity of the settings; `AKV_SYNC_IMDS_ENDPOINT` / `AKV_SYNC_ARC_ENDPOINT`
    /// replace the endpoint when set.
    pub fn new(http: reqwest::Client, identity: &Identity) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let over = match identity {
            Identity::Arc { .. } => env(ENV_ARC_ENDPOINT),
            _ => env(ENV_IMDS_ENDPOINT),
        };
        Self::with_endpoint(http, identity, over)
    }

    /// For the identity of the settings, with its endpoint replaced by `endpoint` if given
    /// (tests and the demo point it at the emulator this way).
    pub fn with_endpoint(
        http: reqwest::Client,
        identity: &Identity,
        endpoint: Option<String>,
    ) -> Self {
        let (kind, endpoint) = match identity {
            Identity::SystemAssigned { endpoint: e } => (
                Kind::Imds { user: None },
                endpoint.unwrap_or_else(|| e.clone()),
            ),
            Identity::UserAssigned {
                endpoint: e,
                client_id,
            } => (
                Kind::Imds {
                    user: Some(UserAssigned::ClientId(client_id.clone())),
                },
                endpoint.unwrap_or_else(|| e.clone()),
            ),
            Identity::UserAssignedByResourceId {
                endpoint: e,
                resource_id,
            } => (
                Kind::Imds {
                    user: Some(UserAssigned::ResourceId(resource_id.clone())),
                },
                endpoint.unwrap_or_else(|| e.clone()),
            ),
            Identity::Arc { endpoint: e } => (Kind::Arc, endpoint.unwrap_or_else(|| e.clone())),
        };
        IdentityClient {
            http,
            kind,
            endpoint: normalise_endpoint(&endpoint),
            arc_token_dir: PathBuf::from(ARC_TOKEN_DIR),
            observer: None,
        }
    }

    /// Tell `observer` of every request (by HTTP status).
    pub fn with_observer(
        mut self,
        observer: Option<std::sync::Arc<dyn super::RequestObserver>>,
    ) -> Self {
        self.observer = observer;
        self
    }

    /// Send, counting the outcome.
    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let result = req.send().await;
        if let Some(m) = &self.observer {
            let status = match &result {
                Ok(r) => r.status().as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            m.request(super::RequestTarget::Identity, "", &status);
        }
        result
    }

    /// The endpoint in use (for logs: it holds no secret).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.endpoint)
    }

    async fn imds(
        &self,
        audience: &str,
        user: Option<&UserAssigned>,
    ) -> Result<FetchedToken, SourceError> {
        let mut query = vec![("api-version", "2018-02-01"), ("resource", audience)];
        if let Some(user) = user {
            query.push(user.query());
        }
        let mut waits = IMDS_RETRY_WAITS.iter();
        loop {
            let sent = self
                .send(
                    self.http
                        .get(self.token_url())
                        .query(&query)
                        .header("Metadata", "true"),
                )
                .await;
            let err = match sent {
                Ok(resp) => match answer(resp, &self.endpoint, user).await {
                    Ok(token) => return Ok(token),
                    Err(e) => e,
                },
                Err(e) => SourceError::new(
                    ErrorClass::Transient,
                    format!(
                        "identity endpoint {} unreachable: {}",
                        self.endpoint,
                        error_chain(&e)
                    ),
                ),
            };
            let retry = matches!(
                err.class,
                ErrorClass::Transient | ErrorClass::NotFound | ErrorClass::Throttled { .. }
            );
            match waits.next() {
                Some(wait) if retry => {
                    tracing::debug!(error = %err.message, wait_s = wait, "identity request failed; retrying");
                    tokio::time::sleep(Duration::from_secs(*wait)).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// One Arc token request, with the challenge answer when we have it.
    async fn arc_request(
        &self,
        audience: &str,
        key: Option<&str>,
    ) -> Result<reqwest::Response, SourceError> {
        let mut req = self
            .http
            .get(self.token_url())
            .query(&[("api-version", "2020-06-01"), ("resource", audience)])
            .header("Metadata", "true");
        if let Some(key) = key {
            req = req.header("Authorization", format!("Basic {key}"));
        }
        self.send(req).await.map_err(|e| {
            SourceError::new(
                ErrorClass::Transient,
                format!(
                    "Azure Arc identity endpoint {} unreachable: {}",
                    self.endpoint,
                    error_chain(&e)
                ),
            )
        })
    }

    async fn arc(&self, audience: &str) -> Result<FetchedToken, SourceError> {
        let first = self.arc_request(audience, None).await?;
        if first.status() != reqwest::StatusCode::UNAUTHORIZED {
            return answer(first, &self.endpoint, None).await;
        }
        let challenge = first
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let dir = self.arc_token_dir.clone();
        let key = tokio::task::spawn_blocking(move || {
            arc_key_path(&challenge, &dir).and_then(|path| read_arc_key(&path))
        })
        .await
        .map_err(|e| {
            SourceError::new(
                ErrorClass::Transient,
                format!("reading the Azure Arc key failed: {e}"),
            )
        })??;
        let second = self.arc_request(audience, Some(key.as_str())).await?;
        answer(second, &self.endpoint, None).await
    }
}

impl TokenSource for IdentityClient {
    async fn fetch(&self, audience: &str) -> Result<FetchedToken, SourceError> {
        match &self.kind {
            Kind::Imds { user } => self.imds(audience, user.as_ref()).await,
            Kind::Arc => self.arc(audience).await,
        }
    }
}

/// `…/metadata/identity/oauth2/token` and `…/metadata/identity/` → `…/metadata/identity`.
pub fn normalise_endpoint(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    e.strip_suffix("/oauth2/token").unwrap_or(e).to_owned()
}

async fn answer(
    resp: reqwest::Response,
    endpoint: &str,
    user: Option<&UserAssigned>,
) -> Result<FetchedToken, SourceError> {
    let status = resp.status();
    if status.is_redirection() {
        return Err(SourceError::new(
            ErrorClass::Permanent,
            redirect_refused(&format!("identity endpoint {endpoint}"), &resp),
        ));
    }
    if status.is_success() {
        let body = read_capped(resp, IDENTITY_MAX).await.map_err(|e| match e {
            ReadError::TooLarge { max } => SourceError::new(
                ErrorClass::Permanent,
                format!(
                    "identity endpoint {endpoint} sent an answer over {} KiB; not a token answer",
                    max / 1024
                ),
            ),
            ReadError::Cut(e) => SourceError::new(
                ErrorClass::Transient,
                format!("identity answer cut short: {}", error_chain(&e)),
            ),
        })?;
        let token: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            // serde's message names the field and position, never the value.
            SourceError::new(
                ErrorClass::Transient,
                format!("identity endpoint {endpoint} sent an unreadable token answer: {e}"),
            )
        })?;
        return Ok(FetchedToken {
            secret: token.access_token,
            expires_in: Duration::from_secs(token.expires_in.unwrap_or(3600)),
        });
    }
    let body = read_capped(resp, IDENTITY_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let detail = identity_error_detail(&body);
    let (class, message) = match status.as_u16() {
        400 if detail.contains("Identity not found") => (
            ErrorClass::Permanent,
            match user {
                Some(UserAssigned::ClientId(id)) => format!(
                    "the identity endpoint does not know the user-assigned identity with client id {id}: assign it to this VM, or fix msiClientId ({detail})"
                ),
                Some(UserAssigned::ResourceId(id)) => format!(
                    "the identity endpoint does not know the user-assigned identity with resource id {id} (sent as msi_res_id): assign it to this VM, or fix msiClientId ({detail})"
                ),
                None => format!(
                    "this VM has no system-assigned identity; enable it, or set msiClientId to a user-assigned identity ({detail})"
                ),
            },
        ),
        404 | 410 => (
            ErrorClass::Transient,
            format!("identity endpoint {endpoint} not ready (HTTP {status}): {detail}"),
        ),
        429 => (
            ErrorClass::Throttled { retry_after: None },
            format!("identity endpoint {endpoint} throttled the request (HTTP 429)"),
        ),
        s if s >= 500 => (
            ErrorClass::Transient,
            format!("identity endpoint {endpoint} failed (HTTP {status}): {detail}"),
        ),
        _ => (
            ErrorClass::Permanent,
            format!(
                "identity endpoint {endpoint} refused the token request (HTTP {status}): {detail}"
            ),
        ),
    };
    Err(SourceError::new(class, message))
}

/// The `error_description` (or `error`) of an identity error body, at most 300 characters.
fn identity_error_detail(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let text = v
        .get("error_description")
        .or_else(|| v.get("error"))
        .and_then(|e| e.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| "no error description".to_owned());
    text.chars().take(300).collect()
}

/// The key-file path of an Arc `Basic realm=` challenge, if it is one we may read: a `.key`
/// name directly in the token folder. Only the folder is resolved; the file itself is
/// opened without following links by [`read_arc_key`].
pub fn arc_key_path(challenge: &str, token_dir: &Path) -> Result<PathBuf, SourceError> {
    let refuse = |why: &str| {
        SourceError::new(
            ErrorClass::Permanent,
            format!("refusing the Azure Arc challenge: {why}"),
        )
    };
    let realm = challenge
        .trim()
        .strip_prefix("Basic realm=")
        .ok_or_else(|| refuse("it is not `Basic realm=<file>`"))?
        .trim_matches('"');
    let path = Path::new(realm);
    if path.extension().and_then(|e| e.to_str()) != Some("key") {
        return Err(refuse("the key file does not end in .key"));
    }
    let name = path
        .file_name()
        .filter(|n| *n != ".." && *n != ".")
        .ok_or_else(|| refuse("the key file has no name"))?;
    // Resolve links and `..` in the folder before checking it; not in the file name.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| refuse("the key file has no folder"))?
        .canonicalize()
        .map_err(|e| refuse(&format!("cannot resolve {}: {e}", path.display())))?;
    let dir = token_dir
        .canonicalize()
        .unwrap_or_else(|_| token_dir.to_path_buf());
    if parent != dir {
        return Err(refuse(&format!(
            "the key file {} is not in {}",
            path.display(),
            token_dir.display()
        )));
    }
    Ok(dir.join(name))
}

fn read_arc_key(path: &Path) -> Result<Zeroizing<String>, SourceError> {
    let refuse = |why: String| {
        SourceError::new(
            ErrorClass::Permanent,
            format!("refusing the Azure Arc challenge: {why}"),
        )
    };
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // No link followed (a `.key` name must not lead to another file), and no wait on a
    // FIFO or device: what is opened is then checked on the descriptor itself.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => refuse(format!("{} is a symbolic link", path.display())),
            _ => refuse(format!("cannot open {}: {e}", path.display())),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > ARC_KEY_MAX {
        return Err(refuse(format!(
            "{} is not a regular file of at most {ARC_KEY_MAX} bytes",
            path.display()
        )));
    }
    // The name the descriptor has: what was opened is the `.key` file that was checked.
    {
        use std::os::fd::AsRawFd;
        if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            && (opened.extension().and_then(|e| e.to_str()) != Some("key") || opened != path)
        {
            return Err(refuse(format!(
                "{} changed while it was opened",
                path.display()
            )));
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(ARC_KEY_MAX as usize + 1));
    file.take(ARC_KEY_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > ARC_KEY_MAX {
        return Err(refuse(format!(
            "{} grew past {ARC_KEY_MAX} bytes",
            path.display()
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| refuse(format!("{} is not text", path.display())))?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// An error and its causes on one line (reqwest's Display alone hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        for e in [
            "http://169.254.169.254/metadata/identity",
            "http://169.254.169.254/metadata/identity/",
            "http://169.254.169.254/metadata/identity/oauth2/token",
        ] {
            assert_eq!(
                normalise_endpoint(e),
                "http://169.254.169.254/metadata/identity"
            );
        }
    }

    #[test]
    fn arc_challenge_outside_the_token_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let good = tokens.join("abc.key");
        std::fs::write(&good, "secret").unwrap();
        let outside = dir.path().join("evil.key");
        std::fs::write(&outside, "x").unwrap();
        let not_key = tokens.join("abc.txt");
        std::fs::write(&not_key, "x").unwrap();
        let sneaky = format!("{}/../evil.key", tokens.display());

        assert_eq!(
            arc_key_path(&format!("Basic realm={}", good.display()), &tokens).unwrap(),
            good.canonicalize().unwrap()
        );
        for bad in [
            format!("Basic realm={}", outside.display()),
            format!("Basic realm={}", not_key.display()),
            format!("Basic realm={sneaky}"),
            format!("Bearer realm={}", good.display()),
            "Basic realm=/etc/shadow".to_owned(),
        ] {
            let err = arc_key_path(&bad, &tokens).unwrap_err();
            assert_eq!(err.class, ErrorClass::Permanent, "{bad}");
        }
    }

    #[test]
    fn oversized_arc_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 5000]).unwrap();
        assert!(read_arc_key(&big).is_err());
    }

    /// The key an Arc challenge naming `realm` would make us send, read as the client does.
    fn challenge_key(realm: &Path, tokens: &Path) -> Result<Zeroizing<String>, SourceError> {
        let path = arc_key_path(&format!("Basic realm={}", realm.display()), tokens)?;
        read_arc_key(&path)
    }

    #[test]
    fn an_arc_key_link_to_a_file_not_named_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::write(tokens.join("notakey.txt"), "not-a-key").unwrap();
        std::os::unix::fs::symlink("notakey.txt", tokens.join("evil.key")).unwrap();
        let err = challenge_key(&tokens.join("evil.key"), &tokens).unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
        assert!(!err.message.contains("not-a-key"));
        // A real key file next to it is read.
        std::fs::write(tokens.join("good.key"), "the-key\n").unwrap();
        assert_eq!(
            challenge_key(&tokens.join("good.key"), &tokens)
                .unwrap()
                .as_str(),
            "the-key"
        );
    }

    #[test]
    fn an_arc_key_that_is_a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let fifo = tokens.join("pipe.key");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(challenge_key(&fifo, &tokens).map(|_| ()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading a FIFO key hung");
        assert_eq!(got.unwrap_err().class, ErrorClass::Permanent);
    }

    #[test]
    fn string_valued_expiry_is_read() {
        let t: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"x","expires_in":"86399","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(86399));
        let t: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"x","expires_in":60}"#).unwrap();
        assert_eq!(t.expires_in, Some(60));
    }
}
