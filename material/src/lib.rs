//! Certificate material: a Key Vault secret value (PKCS#12 or PEM) → a verified, ordered
//! full chain with its private key (SPEC §2.2, §3). Pure: no I/O, no clock (the caller
//! passes `now`).
//!
//! What comes in is never trusted for order: the leaf is the certificate whose public key
//! matches the private key (derived from the private key, not read beside it), and each next
//! certificate is the issuer of the one before (subject/issuer names, authority/subject key
//! identifiers). Key Vault returns some merged PFX files reversed; this makes that moot.
//! Certificates on no path from the leaf are dropped with a warning.
//!
//! ```text
//! value + content type ──► bags/blocks ──► keys (PKCS#8, public key derived)
//!                                      └─► certificates (parsed) ──► leaf ─► issuer ─► … ─► root?
//! ```
//!
//! `lib.rs` only declares the modules and re-exports: [`model`] holds the types every other
//! module shares (so no module imports a sibling that imports it back).

mod chain;
mod convert;
mod der;
mod key;
mod model;
mod pem_text;
mod pkcs12;

pub use convert::convert;
pub use convert::key_vault_pfx;
pub use model::{
    ContentType, MAX_CHAIN_DEPTH, MAX_VALUE_BYTES, Material, MaterialError, MaterialWarning,
};
