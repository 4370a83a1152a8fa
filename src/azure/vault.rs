//! The Key Vault data-plane client: `GET https://{vault}.{suffix}/secrets/{name}[/{version}]`
//! (SPEC §2.2), with each error turned into what the operator needs to hear.

use std::time::Duration;

use akv_sync_actors::{ErrorClass, Fetched, SecretBundle, SecretSource, SourceError, Token};
use akv_sync_config::CertificateUrl;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::azure::identity::error_chain;

/// The data-plane API version used.
pub const API_VERSION: &str = "7.4";
/// Key Vault's own limit on a secret's size; a larger body is not a secret bundle.
const MAX_BODY: usize = 64 * 1024;

/// The Key Vault client (one per process; connections are pooled per vault host).
pub struct KeyVaultClient {
    http: reqwest::Client,
    observer: Option<std::sync::Arc<dyn super::RequestObserver>>,
}

/// The secret's value, read only when the caller needs it (see [`Head`]).
#[derive(Deserialize)]
struct Value {
    value: Option<String>,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes { enabled: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    innererror: Option<Box<ErrorDetail>>,
}

impl KeyVaultClient {
    pub fn new(http: reqwest::Client) -> Self {
        KeyVaultClient {
            http,
            observer: None,
        }
    }

    /// Tell `observer` of every request (by vault host and HTTP status).
    pub fn with_observer(
        mut self,
        observer: Option<std::sync::Arc<dyn super::RequestObserver>>,
    ) -> Self {
        self.observer = observer;
        self
    }

    fn count(&self, host: &str, status: &str) {
        if let Some(m) = &self.observer {
            m.request(super::RequestTarget::Vault, host, status);
        }
    }
}

impl SecretSource for KeyVaultClient {
    async fn get(
        &self,
        url: &CertificateUrl,
        token: &Token,
        installed: Option<&str>,
    ) -> Result<Fetched, SourceError> {
        let resp = self
            .http
            .get(url.secret_url())
            .query(&[("api-version", API_VERSION)])
            .bearer_auth(token.secret())
            .send()
            .await
            .map_err(|e| {
                self.count(&url.host, "error");
                SourceError::new(
                    ErrorClass::Transient,
                    format!("vault {} unreachable: {}", url.host, error_chain(&e)),
                )
            })?;
        let status = resp.status();
        self.count(&url.host, status.as_str());
        // The client follows no redirects: a vault's 3xx is an error, never another host's
        // (unauthenticated) answer.
        if status.is_redirection() {
            return Err(SourceError::new(
                ErrorClass::Permanent,
                crate::azure::capped::redirect_refused(&format!("vault {}", url.host), &resp),
            ));
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(resp, url).await?;
        if status.is_success() {
            return bundle(&body, url, installed);
        }
        Err(vault_error(
            status.as_u16(),
            &body,
            retry_after,
            challenge.as_deref(),
            url,
        ))
    }
}

async fn read_body(
    mut resp: reqwest::Response,
    url: &CertificateUrl,
) -> Result<Zeroizing<Vec<u8>>, SourceError> {
    // Sized from Content-Length when given: growing a zeroizing buffer chunk by chunk
    // copies (and leaves behind unzeroed copies of) what it held so far.
    let expected = resp
        .content_length()
        .unwrap_or(8 * 1024)
        .min(MAX_BODY as u64) as usize;
    let mut body = Zeroizing::new(Vec::with_capacity(expected));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(SourceError::new(
                        ErrorClass::Transient,
                        format!(
                            "vault {} sent an answer over {MAX_BODY} bytes; not a secret",
                            url.host
                        ),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(SourceError::new(
                    ErrorClass::Transient,
                    format!(
                        "answer from vault {} cut short: {}",
                        url.host,
                        error_chain(&e)
                    ),
                ));
            }
        }
    }
}

/// A secret bundle with `value` only checked for: serde skips its text without copying it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    value: Option<serde::de::IgnoredAny>,
    content_type: Option<String>,
    id: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

fn bundle(
    body: &[u8],
    url: &CertificateUrl,
    installed: Option<&str>,
) -> Result<Fetched, SourceError> {
    let unreadable = |why: String| {
        SourceError::new(
            ErrorClass::Transient,
            format!(
                "unreadable answer from vault {} for secret {}: {why}",
                url.vault, url.name
            ),
        )
    };
    // serde_json's errors name a position, never the text: safe to show.
    let head: Head = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    if head.value.is_none() {
        return Err(unreadable("no `value`".into()));
    }
    let id = head.id.ok_or_else(|| unreadable("no `id`".into()))?;
    let version = id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| unreadable(format!("`id` {id} does not end in a version")))?
        .to_owned();
    let content_type = head.content_type.ok_or_else(|| {
        SourceError::new(
            ErrorClass::Permanent,
            format!(
                "secret {} in vault {} has no contentType: it is a plain secret, not a certificate's secret (import the certificate as a Key Vault certificate)",
                url.name, url.vault
            ),
        )
    })?;
    let enabled = head.attributes.enabled;
    // The version already installed: the caller will not use its value (see
    // `SecretSource::get`); the text is only checked to be there.
    if installed == Some(version.as_str()) {
        return Ok(Fetched::Unchanged { version, enabled });
    }
    let b: Value = serde_json::from_slice(body).map_err(|e| unreadable(e.to_string()))?;
    let value = Zeroizing::new(b.value.ok_or_else(|| unreadable("no `value`".into()))?);
    Ok(Fetched::New(SecretBundle {
        value,
        content_type,
        version,
        enabled,
    }))
}

fn vault_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    challenge: Option<&str>,
    url: &CertificateUrl,
) -> SourceError {
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let inner = e
        .error
        .innererror
        .as_ref()
        .map(|i| i.code.as_str())
        .unwrap_or("");
    // Azure's messages hold no secret; keep them short in case of a strange proxy.
    let azure: String = if e.error.code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{}: {}", e.error.code, e.error.message)
    }
    .chars()
    .take(400)
    .collect();
    let what = format!("secret {} in vault {}", url.name, url.vault);
    match status {
        401 => {
            let resource = challenge.and_then(challenge_resource);
            let hint = match resource {
                Some(r) if r != url.cloud.audience() => format!(
                    " (the vault asks for tokens for {r}, but {} was used: invalid audience)",
                    url.cloud.audience()
                ),
                _ => String::new(),
            };
            SourceError::new(
                ErrorClass::Unauthorized,
                format!("HTTP 401: the token was refused for {what}: {azure}{hint}"),
            )
        }
        403 if inner == "SecretDisabled" || e.error.code == "SecretDisabled" => SourceError::new(
            ErrorClass::Forbidden,
            format!("{what}: this version is disabled in Key Vault ({azure})"),
        ),
        403 => SourceError::new(
            ErrorClass::Forbidden,
            format!(
                "access to {what} denied: the VM's identity lacks the 'Key Vault Secrets User' role on the vault (RBAC) or the 'get' secret permission in its access policy ({azure})"
            ),
        ),
        404 => SourceError::new(
            ErrorClass::NotFound,
            format!("{what} not found; check the name and version in the url ({azure})"),
        ),
        429 => SourceError::new(
            ErrorClass::Throttled { retry_after },
            format!("HTTP 429: throttled while reading {what} ({azure})"),
        ),
        s if s >= 500 => SourceError::new(
            ErrorClass::Transient,
            format!("HTTP {status}: Key Vault failed while reading {what} ({azure})"),
        ),
        _ => SourceError::new(
            ErrorClass::Permanent,
            format!("HTTP {status}: Key Vault refused the request for {what} ({azure})"),
        ),
    }
}

/// The `resource="…"` of a Bearer challenge.
fn challenge_resource(challenge: &str) -> Option<String> {
    let at = challenge.find("resource=\"")? + "resource=\"".len();
    let rest = &challenge[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use akv_sync_config::Cloud;

    fn url() -> CertificateUrl {
        CertificateUrl {
            original: "https://v.vault.azure.net/secrets/c".into(),
            vault: "v".into(),
            host: "v.vault.azure.net".into(),
            port: None,
            cloud: Cloud::Public,
            name: "c".into(),
            version: None,
        }
    }

    #[test]
    fn the_version_is_the_last_segment_of_the_id() {
        let body = br#"{"value":"x","contentType":"application/x-pem-file","id":"https://v.vault.azure.net/secrets/c/0123456789abcdef0123456789abcdef","attributes":{"enabled":true}}"#;
        let Fetched::New(b) = bundle(body, &url(), None).unwrap() else {
            panic!("no version installed: the whole secret");
        };
        assert_eq!(b.version, "0123456789abcdef0123456789abcdef");
        assert!(b.enabled);
        assert_eq!(b.value.as_str(), "x");
    }

    #[test]
    fn the_value_of_the_installed_version_is_not_kept() {
        let body = br#"{"value":"secret","contentType":"application/x-pem-file","id":"https://v.vault.azure.net/secrets/c/0123456789abcdef0123456789abcdef","attributes":{"enabled":true}}"#;
        let same = bundle(body, &url(), Some("0123456789abcdef0123456789abcdef")).unwrap();
        assert!(
            matches!(&same, Fetched::Unchanged { version, enabled: true } if version == "0123456789abcdef0123456789abcdef"),
            "not needed, not copied: {same:?}"
        );
        let other = bundle(body, &url(), Some("ffffffffffffffffffffffffffffffff")).unwrap();
        let Fetched::New(other) = other else {
            panic!("another version: the whole secret");
        };
        assert_eq!(other.value.as_str(), "secret");
        // Still an error when the value is missing, whichever version is installed.
        let no_value = br#"{"contentType":"application/x-pem-file","id":"https://v.vault.azure.net/secrets/c/0123456789abcdef0123456789abcdef"}"#;
        for installed in [None, Some("0123456789abcdef0123456789abcdef")] {
            let e = bundle(no_value, &url(), installed).unwrap_err();
            assert!(e.message.contains("no `value`"), "{}", e.message);
        }
    }

    #[test]
    fn forbidden_names_the_missing_role() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized"}}"#;
        let e = vault_error(403, body, None, None, &url());
        assert_eq!(e.class, ErrorClass::Forbidden);
        assert!(e.message.contains("Key Vault Secrets User"));
    }

    #[test]
    fn disabled_version_is_said_so() {
        let body = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        let e = vault_error(403, body, None, None, &url());
        assert!(e.message.contains("disabled"));
    }

    #[test]
    fn throttling_carries_retry_after() {
        let e = vault_error(429, b"{}", Some(Duration::from_secs(9)), None, &url());
        assert_eq!(
            e.class,
            ErrorClass::Throttled {
                retry_after: Some(Duration::from_secs(9))
            }
        );
    }

    #[test]
    fn a_wrong_audience_is_explained() {
        let e = vault_error(
            401,
            br#"{"error":{"code":"Unauthorized","message":"AKV10022: Invalid audience."}}"#,
            None,
            Some(
                r#"Bearer authorization="https://login.windows.net/t", resource="https://vault.azure.cn""#,
            ),
            &url(),
        );
        assert_eq!(e.class, ErrorClass::Unauthorized);
        assert!(e.message.contains("invalid audience"), "{}", e.message);
    }

    #[test]
    fn a_plain_secret_without_content_type_is_refused() {
        let body = br#"{"value":"x","id":"https://v.vault.azure.net/secrets/c/abc"}"#;
        assert_eq!(
            bundle(body, &url(), None).unwrap_err().class,
            ErrorClass::Permanent
        );
    }
}
