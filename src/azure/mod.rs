//! Talking to Azure: the HTTP client ([`net`]: TLS roots, timeouts, test overrides), managed
//! identity ([`identity`]: IMDS and Arc HIMDS, the actors' `TokenSource`) and Key Vault
//! ([`vault`]: secret GETs, the actors' `SecretSource`).

pub mod capped;
pub mod identity;
pub mod net;
pub mod proxy;
pub mod vault;

/// Which service a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTarget {
    Vault,
    Identity,
}

impl RequestTarget {
    /// The `target` label: `vault` or `identity`.
    pub fn label(self) -> &'static str {
        match self {
            RequestTarget::Vault => "vault",
            RequestTarget::Identity => "identity",
        }
    }
}

/// Told of every request the clients make (metrics count them). The clients know nothing of
/// what listens.
pub trait RequestObserver: Send + Sync {
    /// A request to `target` at `host` ended with `status` (an HTTP status, or `error`).
    fn request(&self, target: RequestTarget, host: &str, status: &str);
}
