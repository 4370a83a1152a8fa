//! What the emulator counts: requests by (server, vault, path, status) and tokens issued.

use serde::{Deserialize, Serialize};

use super::service::Server;
use super::state::IdentityRef;

/// Request counts: by (server, vault, path, status), and tokens issued by (server, identity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub requests: Vec<RequestCount>,
    pub tokens_issued: Vec<TokenCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    pub server: Server,
    pub vault: Option<String>,
    pub path: String,
    /// The HTTP status answered; 0 when the connection was reset instead.
    pub status: u16,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCount {
    pub server: Server,
    pub identity: String,
    pub count: u64,
}

impl Counters {
    /// Requests to `vault` (any path) answered with `status` (or any status when `None`).
    pub fn vault_requests(&self, vault: &str, status: Option<u16>) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.server == Server::Vault)
            .filter(|r| r.vault.as_deref() == Some(&vault.to_ascii_lowercase()))
            .filter(|r| status.is_none_or(|s| s == r.status))
            .map(|r| r.count)
            .sum()
    }

    /// Requests to `server` answered with `status` (or any status when `None`).
    pub fn server_requests(&self, server: Server, status: Option<u16>) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.server == server && status.is_none_or(|s| s == r.status))
            .map(|r| r.count)
            .sum()
    }

    /// Tokens issued by any service to `identity` (its display form: `system`, `user:<id>`, `arc`).
    pub fn tokens_for(&self, identity: &IdentityRef) -> u64 {
        let key = identity.to_string();
        self.tokens_issued
            .iter()
            .filter(|t| t.identity == key)
            .map(|t| t.count)
            .sum()
    }
}
