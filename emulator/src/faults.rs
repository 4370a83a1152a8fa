//! Faults the emulator can be told to inject (errors, resets, delays, bad bodies) and the
//! per-vault request limits that answer 429.

use serde::{Deserialize, Serialize};

use super::service::Server;

/// A vault's request limit: at most `per10s` authenticated secret requests in any 10 seconds;
/// past it, 429 `Throttled`, with `Retry-After: retry_after` when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub per10s: u32,
    #[serde(default)]
    pub retry_after: Option<u32>,
}

/// Which service a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FaultTarget {
    #[default]
    Any,
    Vault,
    Imds,
    Arc,
}

/// What a matching request gets instead of (or before) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer `status` with `body` (or a default error body in the service's own shape).
    #[serde(rename_all = "camelCase")]
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        retry_after: Option<u32>,
    },
    /// Wait, then answer normally.
    #[serde(rename_all = "camelCase")]
    Delay { millis: u64 },
    /// Close the connection without an answer.
    Reset,
    /// 200 with the usual headers and a body that is not JSON.
    GarbageBody,
    /// The normal answer, cut off halfway through the body (`Content-Length` promises all of it).
    TruncatedBody,
}

/// A fault to inject. `path` is matched against the request path (no query) with `*` standing
/// for any run of characters; `vault`, when set, limits it to that vault (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub target: FaultTarget,
    #[serde(default = "any_path")]
    pub path: String,
    #[serde(default)]
    pub vault: Option<String>,
    pub action: FaultAction,
    /// How many requests it applies to; `None` = every request until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

fn any_path() -> String {
    "*".to_owned()
}

impl Fault {
    /// A fault on every request of `target` whose path matches `path`, forever.
    pub fn new(target: FaultTarget, path: &str, action: FaultAction) -> Fault {
        Fault {
            target,
            path: path.to_owned(),
            vault: None,
            action,
            count: None,
        }
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> Fault {
        self.count = Some(n);
        self
    }

    /// Apply only to requests for this vault.
    pub fn on_vault(mut self, vault: &str) -> Fault {
        self.vault = Some(vault.to_ascii_lowercase());
        self
    }

    pub(crate) fn matches(&self, server: Server, vault: Option<&str>, path: &str) -> bool {
        let target_ok = match self.target {
            FaultTarget::Any => server != Server::Admin,
            FaultTarget::Vault => server == Server::Vault,
            FaultTarget::Imds => server == Server::Imds,
            FaultTarget::Arc => server == Server::Arc,
        };
        let vault_ok = match (&self.vault, vault) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        target_ok && vault_ok && glob_match(&self.path, path)
    }
}

/// `*` matches any run of characters (including `/`); everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob_match("*", "/secrets/c1"));
        assert!(glob_match("/secrets/*", "/secrets/c1/abc"));
        assert!(glob_match("/secrets/c1*", "/secrets/c1/"));
        assert!(glob_match("*/token", "/metadata/identity/oauth2/token"));
        assert!(glob_match("/a*c*e", "/abcde"));
        assert!(!glob_match("/secrets/c1", "/secrets/c1/"));
        assert!(!glob_match("/secrets/c2*", "/secrets/c1"));
        assert!(!glob_match("/a*b*a", "/a"));
    }
}
