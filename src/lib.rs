//! # akv-sync
//!
//! The adapters around the reconciler (`akv-sync-actors`), the settings (`akv-sync-config`)
//! and the certificate material (`akv-sync-material`), and the command-line interface. See
//! ARCHITECTURE.md for the data flow and where each concern lives.
//!
//! - [`azure`]: the network (TLS, proxy, test overrides), managed identity (IMDS, Arc) and the
//!   Key Vault client — the actors' `TokenSource` and `SecretSource` ports.
//! - [`store`]: files, links and ACLs, and the install policy — the `Installer` port.
//! - [`observe`]: what watches the reconciler — metrics and health endpoints, hooks, expiry.
//! - [`status`]: the VM agent's status file; [`log`]: the log file and Fluentd.
//! - [`cli`]: one module per command, and the one settings-file reader.

pub mod azure;
pub mod cli;
pub mod clock;
pub mod log;
pub mod observe;
pub mod status;
pub mod store;
