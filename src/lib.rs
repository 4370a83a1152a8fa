//! # akv-sync
//!
//! The adapters around the reconciler (`akv-sync-actors`) and the settings
//! (`akv-sync-config`): the Key Vault client, identity (IMDS, Arc), certificate material
//! (PKCS#12/PEM → ordered full-chain PEM), the store (files, links, ACLs), the emulator, and
//! the command-line interface.

pub mod capped;
pub mod cmd;
pub mod emulator;
pub mod fluentd;
pub mod hook;
pub mod identity;
pub mod install;
pub mod local;
pub mod logging;
pub mod material;
pub mod metrics;
pub mod net;
pub mod pemfile;
pub mod status;
pub mod store;
pub mod vault;
