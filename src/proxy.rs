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
//! client ([`crate::net::NetConfig::vault_client`]) is given the proxy.
//!
//! Azure Arc: `azcmagent_proxy add URL` (the Connected Machine agent's environment-variable
//! method) writes the proxy into systemd's `DefaultEnvironment=` for every service, so it
//! reaches this one as `https_proxy`. The agent-specific `azcmagent config set proxy.url` is the
//! agent's own setting; Microsoft documents that extensions do not all inherit it, and it does
//! not reach this service: set the unit's `Environment=` lines (see the README).

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
    /// From the process environment; `None` when no proxy variable is set (or all are empty).
    pub fn from_env() -> Result<Option<ProxyConfig>, ProxyError> {
        Self::from_vars(|name| std::env::var(name).ok())
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
        let no_proxy = NO_PROXY_VARS.iter().find_map(|&var| non_empty(var));
        Ok(Some(ProxyConfig {
            url,
            source,
            no_proxy,
        }))
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
