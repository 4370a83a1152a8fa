//! The HTTPS proxy that Key Vault requests go through, read from the environment the way
//! curl and Microsoft's SDKs read it: `https_proxy`/`HTTPS_PROXY`, else `all_proxy`/`ALL_PROXY`
//! (lower case first, as curl), minus the hosts of `no_proxy`/`NO_PROXY` (comma-separated
//! names, `.suffix`/`*.suffix` domains, IP addresses and CIDR ranges, `*` for all).
//!
//! Key Vault requests are tunnelled with `CONNECT vault:443`; TLS runs inside the tunnel to the
//! vault itself, so the vault's certificate and host name are verified as without a proxy.
//!
//! **The identity endpoint is never proxied**, whatever the environment says: IMDS
//! (169.254.169.254) answers only requests that come from the VM itself, and Arc's HIMDS listens
//! on `localhost:40342`; a proxy would either fail them or see the token. Only the Key Vault
//! client ([`crate::azure::net::NetConfig::vault_client`]) is given the proxy.
//!
//! Azure Arc has two ways to set the Connected Machine agent's proxy, and both reach us:
//! - `azcmagent_proxy add URL` (the environment method) writes the proxy into systemd's
//!   `DefaultEnvironment=` for every service, so it arrives here as `https_proxy`;
//! - `azcmagent config set proxy.url URL` (the agent-specific method, preferred since agent
//!   1.13) stores it as `"proxy.url"` in `/var/opt/azcmagent/localconfig.json`. Extensions are
//!   not given it: each reads that file, as Microsoft's Azure Monitor Agent extension does. So
//!   do we, when no proxy variable is set (variables set for this service come first).
//!   `"proxy.bypass"` there lists Arc's own service groups (`AAD`, `ARM`, `Arc`, `AMA`…), none
//!   of which is Key Vault: exceptions for Key Vault go in `NO_PROXY`.

/// Why the proxy variables could not be used. Values are shown without their credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "{var}: `{shown}` is not a proxy URL: write http://HOST:PORT (e.g. http://proxy.example:3128)"
    )]
    BadUrl { var: &'static str, shown: String },
    #[error(
        "{var}: `{scheme}://` proxies are not supported for Key Vault: use an HTTP proxy (http:// or https://) that accepts CONNECT"
    )]
    UnsupportedScheme { var: &'static str, scheme: String },
}

/// The Connected Machine agent's local settings (`azcmagent config set …`) on Arc servers.
pub const ARC_LOCAL_CONFIG: &str = "/var/opt/azcmagent/localconfig.json";
/// How a proxy from [`ARC_LOCAL_CONFIG`] is named in logs and errors.
const ARC_SOURCE: &str = "proxy.url of /var/opt/azcmagent/localconfig.json (azcmagent config)";

/// The proxy variables, in the order they are looked up.
const PROXY_VARS: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// The Key Vault proxy: its URL (credentials included, never shown) and its exceptions.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    url: reqwest::Url,
    /// The variable it came from (for the log).
    pub source: &'static str,
    /// `NO_PROXY`'s value, if any.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.shown())
            .field("source", &self.source)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// From the process environment, else (on Arc servers) the Connected Machine agent's
    /// `proxy.url`; `None` when neither names a proxy.
    pub fn from_env() -> Result<Option<ProxyConfig>, ProxyError> {
        Self::from_sources(
            |name| std::env::var(name).ok(),
            std::path::Path::new(ARC_LOCAL_CONFIG),
        )
    }

    /// From the variables `get` returns, else from `proxy.url` in `arc_config` (an absent,
    /// unreadable or unparsable file, or an empty `proxy.url`, means no proxy from there; the
    /// file belongs to another agent, so its problems are logged, not fatal).
    pub fn from_sources(
        get: impl Fn(&str) -> Option<String>,
        arc_config: &std::path::Path,
    ) -> Result<Option<ProxyConfig>, ProxyError> {
        if let Some(found) = Self::from_vars(&get)? {
            return Ok(Some(found));
        }
        let text = match std::fs::read(arc_config) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::warn!(file = %arc_config.display(), error = %e, "cannot read the Arc agent's settings: its proxy.url is not used");
                return Ok(None);
            }
        };
        let url = match serde_json::from_slice::<serde_json::Value>(&text) {
            Ok(json) => json
                .get("proxy.url")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            Err(e) => {
                tracing::warn!(file = %arc_config.display(), error = %e, "the Arc agent's settings are not JSON: its proxy.url is not used");
                return Ok(None);
            }
        };
        match url {
            Some(url) if !url.trim().is_empty() => {
                let no_proxy = NO_PROXY_VARS
                    .iter()
                    .find_map(|&var| get(var).filter(|v| !v.trim().is_empty()));
                Self::parse(ARC_SOURCE, &url, no_proxy).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// From `get` (the environment, or a test's map).
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ProxyConfig>, ProxyError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let Some((source, value)) = PROXY_VARS
            .iter()
            .find_map(|&var| non_empty(var).map(|v| (var, v)))
        else {
            return Ok(None);
        };
        let no_proxy = NO_PROXY_VARS.iter().find_map(|&var| non_empty(var));
        Self::parse(source, &value, no_proxy).map(Some)
    }

    /// `value` (from `source`) as the proxy's URL.
    fn parse(
        source: &'static str,
        value: &str,
        no_proxy: Option<String>,
    ) -> Result<ProxyConfig, ProxyError> {
        let value = value.trim();
        // curl's reading: no scheme means http.
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let bad = || ProxyError::BadUrl {
            var: source,
            shown: without_credentials(value),
        };
        let url = reqwest::Url::parse(&with_scheme).map_err(|_| bad())?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(ProxyError::UnsupportedScheme {
                    var: source,
                    scheme: other.to_owned(),
                });
            }
        }
        if url.host_str().is_none_or(str::is_empty) || url.path() != "/" || url.query().is_some() {
            return Err(bad());
        }
        Ok(ProxyConfig {
            url,
            source,
            no_proxy,
        })
    }

    /// The proxy's URL without credentials, for logs and messages.
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    /// The proxy for reqwest: every `https://` request not excepted by `NO_PROXY`
    /// (credentials in the URL become `Proxy-Authorization: Basic`).
    pub fn reqwest_proxy(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        let no_proxy = self
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        Ok(reqwest::Proxy::https(self.url.as_str())?.no_proxy(no_proxy))
    }
}

/// `value` with any `user:password@` removed.
fn without_credentials(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((head, host)) => match head.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…@{host}"),
            None => format!("…@{host}"),
        },
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<ProxyConfig>, ProxyError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyConfig::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn no_variable_means_no_proxy() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("HTTPS_PROXY", "  ")]), Ok(None));
        // HTTP_PROXY is for http:// URLs; Key Vault is https only.
        assert_eq!(read(&[("HTTP_PROXY", "http://p:3128")]), Ok(None));
    }

    #[test]
    fn lower_case_then_upper_case_then_all_proxy() {
        let p = read(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("ALL_PROXY", "http://all:3"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.source, p.shown()),
            ("https_proxy", "http://lower:2/".into())
        );
        let p = read(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("ALL_PROXY", "http://all:3"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.source, "HTTPS_PROXY");
        let p = read(&[("ALL_PROXY", "http://all:3")]).unwrap().unwrap();
        assert_eq!((p.source, p.shown()), ("ALL_PROXY", "http://all:3/".into()));
    }

    #[test]
    fn host_and_port_without_scheme_is_http_and_no_proxy_is_kept() {
        let p = read(&[
            ("HTTPS_PROXY", "proxy.example:3128"),
            ("NO_PROXY", "localhost,.internal"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.shown(), "http://proxy.example:3128/");
        assert_eq!(p.no_proxy.as_deref(), Some("localhost,.internal"));
        assert!(p.reqwest_proxy().is_ok());
    }

    #[test]
    fn credentials_are_used_but_never_shown() {
        let p = read(&[("HTTPS_PROXY", "http://user:s3cret@proxy.example:3128")])
            .unwrap()
            .unwrap();
        assert_eq!(p.shown(), "http://proxy.example:3128/");
        assert!(!format!("{p:?}").contains("s3cret"));
        let err = read(&[("HTTPS_PROXY", "http://user:s3cret@proxy example:3128")]).unwrap_err();
        assert!(matches!(
            err,
            ProxyError::BadUrl {
                var: "HTTPS_PROXY",
                ..
            }
        ));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    fn with_arc_config(
        vars: &[(&str, &str)],
        file: Option<&str>,
    ) -> Result<Option<ProxyConfig>, ProxyError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("localconfig.json");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyConfig::from_sources(|name| map.get(name).cloned(), &path)
    }

    #[test]
    fn arc_agents_proxy_url_is_used_when_no_variable_is_set() {
        // As `azcmagent config set proxy.url` writes it (bypass lists Arc's own groups).
        let file = r#"{"proxy.url":"http://arcproxy.contoso:8080","proxy.bypass":["Arc"],"extensions.enabled":"true"}"#;
        let p = with_arc_config(&[("NO_PROXY", "localhost")], Some(file))
            .unwrap()
            .unwrap();
        assert_eq!(p.shown(), "http://arcproxy.contoso:8080/");
        assert_eq!(p.source, ARC_SOURCE);
        assert_eq!(p.no_proxy.as_deref(), Some("localhost"));
        // A variable set for this service comes first.
        let p = with_arc_config(&[("HTTPS_PROXY", "http://unit:3128")], Some(file))
            .unwrap()
            .unwrap();
        assert_eq!(p.source, "HTTPS_PROXY");
    }

    #[test]
    fn no_usable_arc_proxy_url_means_no_proxy() {
        for file in [
            None,
            Some(r#"{"proxy.url":""}"#),
            Some(r#"{"proxy.bypass":[]}"#),
            Some("not json"),
            Some(r#"{"proxy.url":42}"#),
        ] {
            assert_eq!(with_arc_config(&[], file), Ok(None), "{file:?}");
        }
    }

    #[test]
    fn bad_arc_proxy_url_is_refused_naming_the_file() {
        let err = with_arc_config(&[], Some(r#"{"proxy.url":"socks5://p:1080"}"#)).unwrap_err();
        assert!(matches!(err, ProxyError::UnsupportedScheme { var, .. } if var == ARC_SOURCE));
    }

    #[test]
    fn malformed_and_socks_proxies_are_refused_naming_the_variable() {
        for bad in ["http://", "http://proxy:3128/path", "http://proxy:99999"] {
            assert!(
                matches!(
                    read(&[("https_proxy", bad)]),
                    Err(ProxyError::BadUrl {
                        var: "https_proxy",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            read(&[("ALL_PROXY", "socks5://127.0.0.1:1080")]),
            Err(ProxyError::UnsupportedScheme {
                var: "ALL_PROXY",
                scheme: "socks5".into()
            })
        );
    }
}
