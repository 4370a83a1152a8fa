//! Talking to Azure: the HTTP client ([`net`]: TLS roots, timeouts, test overrides), managed
//! identity ([`identity`]: IMDS and Arc HIMDS, the actors' `TokenSource`) and Key Vault
//! ([`vault`]: secret GETs, the actors' `SecretSource`).

pub mod identity;
pub mod net;
pub mod vault;
