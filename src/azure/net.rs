//! The HTTP client every outbound request goes through: rustls (ring provider) trusting the
//! system's CA store plus `AKV_SYNC_CA_FILE`, and host names mapped by `AKV_SYNC_CONNECT_TO`.
//!
//! The two environment variables are for tests, the demo and private endpoints: with them the
//! agent reaches an emulator (or a private link address) with **unchanged real settings**
//! (`https://myvault.vault.azure.net/secrets/c1`): TLS still verifies the vault's host name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use akv_sync_config::Cloud;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// `AKV_SYNC_CONNECT_TO`: comma-separated `HOST-PATTERN=IP:PORT` (pattern `*.suffix` or exact).
pub const ENV_CONNECT_TO: &str = "AKV_SYNC_CONNECT_TO";
/// `AKV_SYNC_CA_FILE`: a PEM file of extra trusted CA certificates.
pub const ENV_CA_FILE: &str = "AKV_SYNC_CA_FILE";

/// Problems building the client from the environment.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "{ENV_CONNECT_TO}: entry `{entry}` is not HOST-PATTERN=IP:PORT (e.g. `*.vault.azure.net=127.0.0.1:8443`)"
    )]
    BadConnectTo { entry: String },
    #[error("{ENV_CA_FILE}: cannot read `{path}`: {source}")]
    CaFileUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{ENV_CA_FILE}: `{path}` is {why}; a trusted CA file must be owned by root (or the agent's user) and writable by no one else"
    )]
    CaFileUnsafe { path: String, why: String },
    #[error("{ENV_CA_FILE}: `{path}` holds no usable PEM certificate")]
    CaFileEmpty { path: String },
    #[error(transparent)]
    Proxy(#[from] crate::azure::proxy::ProxyError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One `AKV_SYNC_CONNECT_TO` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pattern: String,
    addr: SocketAddr,
}

impl ConnectTo {
    /// Connections to hosts matching `pattern` (`*.suffix` or exact) go to `addr`.
    pub fn new(pattern: &str, addr: SocketAddr) -> Self {
        ConnectTo {
            pattern: pattern.to_ascii_lowercase(),
            addr,
        }
    }

    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self.pattern.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => host == self.pattern,
        }
    }
}

/// Parse `AKV_SYNC_CONNECT_TO`'s value.
pub fn parse_connect_to(value: &str) -> Result<Vec<ConnectTo>, NetError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || NetError::BadConnectTo {
                entry: entry.to_owned(),
            };
            let (pattern, addr) = entry.split_once('=').ok_or_else(bad)?;
            let addr: SocketAddr = addr.trim().parse().map_err(|_| bad())?;
            let pattern = pattern.trim().to_ascii_lowercase();
            if pattern.is_empty() || pattern.contains('/') {
                return Err(bad());
            }
            Ok(ConnectTo { pattern, addr })
        })
        .collect()
}

/// Resolves mapped hosts to their address and everything else through the system resolver.
struct Resolver {
    map: Vec<ConnectTo>,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let mapped = self
            .map
            .iter()
            .find(|m| m.matches(name.as_str()))
            .map(|m| m.addr);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if let Some(addr) = mapped {
                let addrs: Addrs = Box::new(std::iter::once(addr));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Settings of the HTTP client, usually read from the environment.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    pub connect_to: Vec<ConnectTo>,
    /// PEM text of extra trusted CAs.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub extra_ca_path: Option<String>,
    /// Time limit of a whole request (default 30 s).
    pub request_timeout: Option<Duration>,
    /// The HTTPS proxy for Key Vault (never for the identity endpoint).
    pub proxy: Option<crate::azure::proxy::ProxyConfig>,
}

/// The extra CA file's content, if it is root's (or the agent's own user's, for a developer
/// running the agent unprivileged) and writable by no one else: whoever can write it decides
/// which servers the agent trusts to be its vault.
pub fn read_ca_file(path: &str) -> Result<Vec<u8>, NetError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let unreadable = |source| NetError::CaFileUnreadable {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let unsafe_because = |why: String| NetError::CaFileUnsafe {
        path: path.to_owned(),
        why,
    };
    if !meta.is_file() {
        return Err(unsafe_because("not a regular file".into()));
    }
    if meta.uid() != 0 && meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(unsafe_because(format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "writable by its group or others (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    // CA bundles are kilobytes; a few MiB is generous.
    let mut pem = Vec::new();
    file.take(8 << 20)
        .read_to_end(&mut pem)
        .map_err(unreadable)?;
    Ok(pem)
}

/// The test and private-endpoint overrides set in the environment: (variable, value).
/// `run` and `once` log a warning for each at start.
pub fn overrides_in_force() -> Vec<(&'static str, String)> {
    [
        ENV_CONNECT_TO,
        ENV_CA_FILE,
        crate::azure::identity::ENV_IMDS_ENDPOINT,
        crate::azure::identity::ENV_ARC_ENDPOINT,
    ]
    .into_iter()
    .filter_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    })
    .collect()
}

/// Warn about each override in force (they redirect where the agent connects or what it
/// trusts; none belongs on a production host unless deliberately set).
pub fn warn_overrides() {
    for (name, value) in overrides_in_force() {
        tracing::warn!(
            variable = name,
            value = %value,
            "test override in force: {name} changes where the agent connects or what it trusts"
        );
    }
}

impl NetConfig {
    /// From `AKV_SYNC_CONNECT_TO`, `AKV_SYNC_CA_FILE` and the proxy variables
    /// ([`crate::azure::proxy`]: `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).
    pub fn from_env() -> Result<Self, NetError> {
        let connect_to = match std::env::var(ENV_CONNECT_TO) {
            Ok(v) => parse_connect_to(&v)?,
            Err(_) => Vec::new(),
        };
        let (extra_ca_pem, extra_ca_path) = match std::env::var(ENV_CA_FILE) {
            Ok(path) if !path.is_empty() => (Some(read_ca_file(&path)?), Some(path)),
            _ => (None, None),
        };
        Ok(NetConfig {
            connect_to,
            extra_ca_pem,
            extra_ca_path,
            request_timeout: None,
            proxy: crate::azure::proxy::ProxyConfig::from_env()?,
        })
    }

    /// Build the client for the identity endpoint (and any request that must go direct): no
    /// proxy, whatever the environment says.
    pub fn client(&self) -> Result<reqwest::Client, NetError> {
        self.build(None)
    }

    /// Build the client for Key Vault: as [`NetConfig::client`], through the HTTPS proxy
    /// when one is configured (a `CONNECT` tunnel; TLS still verifies the vault's name).
    pub fn vault_client(&self) -> Result<reqwest::Client, NetError> {
        if let Some(proxy) = &self.proxy {
            tracing::info!(
                proxy = %proxy.shown(),
                from = proxy.source,
                no_proxy = proxy.no_proxy.as_deref().unwrap_or(""),
                "Key Vault requests go through an HTTPS proxy"
            );
        }
        self.build(self.proxy.as_ref())
    }

    /// TLS 1.2+ with the ring provider, HTTP/2 where offered, connection reuse, and timeouts
    /// on every request.
    fn build(
        &self,
        proxy: Option<&crate::azure::proxy::ProxyConfig>,
    ) -> Result<reqwest::Client, NetError> {
        let mut roots = rustls::RootCertStore::empty();
        // The system's store; individual unparsable entries are skipped, as browsers do.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = &self.extra_ca_pem {
            let path = self.extra_ca_path.clone().unwrap_or_default();
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err(NetError::CaFileEmpty { path });
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // reqwest adds no ALPN to a preconfigured config: offer HTTP/2 ourselves, so that one
        // connection per vault multiplexes every watcher's requests where the server agrees.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Only the proxy given here: reqwest's own reading of the environment stays off.
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(proxy) = proxy {
            builder = builder.proxy(proxy.reqwest_proxy()?);
        }
        let client = builder
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(Resolver {
                map: self.connect_to.clone(),
            }))
            // Key Vault and the identity endpoints never redirect: a 3xx is an error that
            // names the location (see `capped::redirect_refused`), not a request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(self.request_timeout.unwrap_or(Duration::from_secs(30)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("akv-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(client)
    }
}

// Pointing the agent at a local emulator: what `AKV_SYNC_CONNECT_TO` and `AKV_SYNC_CA_FILE`
// do through the environment, as values (the demo, tests and benches use this).

/// Every cloud's vault hosts go to `vault_addr`; the emulator's CA is trusted.
pub fn net_for_emulator(vault_addr: SocketAddr, ca_pem: &str) -> NetConfig {
    NetConfig {
        connect_to: Cloud::ALL
            .iter()
            .map(|c| ConnectTo::new(&format!("*.{}", c.suffix()), vault_addr))
            .collect(),
        extra_ca_pem: Some(ca_pem.as_bytes().to_vec()),
        extra_ca_path: Some("<emulator CA>".into()),
        request_timeout: None,
        proxy: None,
    }
}

/// The same, as the environment variables a child `akv-sync` process reads.
pub fn env_for_emulator(
    vault_addr: SocketAddr,
    ca_file: &std::path::Path,
    imds_endpoint: &str,
) -> Vec<(String, String)> {
    let connect_to: Vec<String> = Cloud::ALL
        .iter()
        .map(|c| format!("*.{}={vault_addr}", c.suffix()))
        .collect();
    vec![
        (ENV_CONNECT_TO.into(), connect_to.join(",")),
        (ENV_CA_FILE.into(), ca_file.display().to_string()),
        (
            crate::azure::identity::ENV_IMDS_ENDPOINT.into(),
            imds_endpoint.into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_maps_wildcards_and_exact_hosts() {
        let map =
            parse_connect_to("*.vault.azure.net=127.0.0.1:8443, login.example=[::1]:9").unwrap();
        assert!(map[0].matches("myvault.vault.azure.net"));
        assert!(map[0].matches("MyVault.Vault.Azure.Net"));
        assert!(!map[0].matches("vault.azure.net"));
        assert!(!map[0].matches("evilvault.azure.net"));
        assert!(map[1].matches("login.example"));
        assert_eq!(map[1].addr, "[::1]:9".parse().unwrap());
    }

    #[test]
    fn connect_to_rejects_malformed_entries() {
        for bad in [
            "*.vault.azure.net",
            "x=127.0.0.1",
            "=127.0.0.1:1",
            "a/b=127.0.0.1:1",
        ] {
            assert!(
                matches!(parse_connect_to(bad), Err(NetError::BadConnectTo { .. })),
                "{bad}"
            );
        }
    }
}
