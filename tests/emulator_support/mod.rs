//! A small test-only client for the emulator: a reqwest client that trusts only the emulator's
//! CA and resolves every Key Vault host name to the emulator (and nothing else at all).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use akv_sync_emulator::{self as emulator, CertSpec, Emulator, EmulatorOptions, Format, KeyKind};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves `*.vault.azure.net` & co. and `localhost` to the emulator; refuses every other
/// name, so a test can never reach the network by mistake.
struct EmulatorResolver {
    vault: SocketAddr,
}

const SUFFIXES: [&str; 4] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.azure.net",
];

impl Resolve for EmulatorResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let vault = self.vault;
        Box::pin(async move {
            if SUFFIXES.iter().any(|s| host.ends_with(s)) || host == "localhost" {
                Ok(Box::new(std::iter::once(vault)) as Addrs)
            } else {
                Err(format!("test resolver refuses {host}").into())
            }
        })
    }
}

pub struct Harness {
    pub emu: Emulator,
    /// HTTPS client for the vault (trusts only the emulator CA).
    pub https: reqwest::Client,
    /// Plain client for IMDS, Arc and the admin API.
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub fn https_client(emu: &Emulator) -> reqwest::Client {
    https_client_builder(emu).build().unwrap()
}

pub fn https_client_builder(emu: &Emulator) -> reqwest::ClientBuilder {
    https_client_for(&emu.ca_pem, emu.vault_addr)
}

/// A client trusting only the CA in `ca_pem`, sending every vault host to `vault`.
pub fn https_client_for(ca_pem: &str, vault: SocketAddr) -> reqwest::ClientBuilder {
    let mut roots = rustls::RootCertStore::empty();
    for block in pem::parse_many(ca_pem.as_bytes()).unwrap() {
        roots.add(block.contents().to_vec().into()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .dns_resolver(EmulatorResolver { vault })
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
}

pub fn http_client() -> reqwest::Client {
    // reqwest (feature `rustls-no-provider`) builds a TLS layer even for plain HTTP clients.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn start_with(mut opts: EmulatorOptions) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    opts.state_dir = dir.path().join("state");
    opts.arc_token_dir = dir.path().join("arc-tokens");
    let emu = emulator::start(opts).await.unwrap();
    Harness {
        https: https_client(&emu),
        http: http_client(),
        emu,
        dir,
    }
}

pub async fn start() -> Harness {
    start_with(EmulatorOptions::default()).await
}

/// A quick certificate (EC keys: RSA generation is slow in debug builds).
pub fn ec_spec(format: Format) -> CertSpec {
    CertSpec {
        key: KeyKind::EcP256,
        format,
        subject_cn: "test.example".into(),
        ..CertSpec::default()
    }
}

impl Harness {
    /// A token from IMDS for `resource` (system-assigned, or `client_id`).
    pub async fn imds_token(&self, resource: &str, client_id: Option<&str>) -> String {
        let resp = self
            .http
            .get(token_url(&self.emu.imds_endpoint, resource, client_id))
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "IMDS token request failed");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET https://{host}{path_and_query}` with an optional bearer token.
    pub async fn vault_get(&self, url: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.https.get(url).header(
            "x-ms-client-request-id",
            "0f6a8f5e-0000-4000-8000-000000000001",
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// The secret's JSON with a fresh public-cloud token; panics unless 200.
    pub async fn secret_json(&self, vault: &str, path: &str) -> serde_json::Value {
        let token = self.imds_token("https://vault.azure.net", None).await;
        let resp = self
            .vault_get(
                &format!("https://{vault}.vault.azure.net{path}?api-version=7.4"),
                Some(&token),
            )
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

/// `{"error":{"code":…}}` and `innererror.code` of a Key Vault error answer.
pub async fn error_codes(resp: reqwest::Response) -> (String, Option<String>, String) {
    let body: serde_json::Value = resp.json().await.unwrap();
    let e = &body["error"];
    (
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["innererror"]["code"].as_str().map(str::to_owned),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{endpoint}/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]`.
pub fn token_url(endpoint: &str, resource: &str, client_id: Option<&str>) -> String {
    let mut url = format!(
        "{endpoint}/oauth2/token?api-version=2018-02-01&resource={}",
        enc(resource)
    );
    if let Some(id) = client_id {
        url.push_str(&format!("&client_id={}", enc(id)));
    }
    url
}
