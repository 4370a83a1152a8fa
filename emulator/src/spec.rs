//! What the generator is asked for and what it gives: a leaf the generators (generator.rs
//! and, for the curves rcgen lacks, the x509 writer) share without importing each other.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The kind of key pair a certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    #[default]
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
    /// EC P-521 (Key Vault's `P-521`); built by [`super::x509`]: ring has no P-521.
    EcP521,
    /// EC secp256k1 (Key Vault's `P-256K`); built by [`super::x509`].
    #[serde(rename = "ecP256K")]
    EcP256K,
}

/// Why a key kind name was not understood.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown key kind {0:?}: use rsa2048, rsa3072, rsa4096, ecP256, ecP384, ecP521 or ecP256K")]
pub struct UnknownKeyKind(pub String);

impl std::str::FromStr for KeyKind {
    type Err = UnknownKeyKind;

    /// The JSON names (`rsa2048`, `ecP256`, …), case-insensitive, `-` ignored (`ec-p256`).
    fn from_str(s: &str) -> Result<KeyKind, UnknownKeyKind> {
        Ok(match s.to_ascii_lowercase().replace('-', "").as_str() {
            "rsa2048" => KeyKind::Rsa2048,
            "rsa3072" => KeyKind::Rsa3072,
            "rsa4096" => KeyKind::Rsa4096,
            "ecp256" => KeyKind::EcP256,
            "ecp384" => KeyKind::EcP384,
            "ecp521" => KeyKind::EcP521,
            "ecp256k" => KeyKind::EcP256K,
            _ => return Err(UnknownKeyKind(s.to_owned())),
        })
    }
}

/// The content type a certificate's secret is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// `application/x-pkcs12`: base64 of a PFX with the absent password (as Key Vault serves it).
    #[default]
    Pkcs12,
    /// `application/x-pem-file`: the private key first, then the certificates.
    Pem,
}

impl Format {
    /// The `contentType` Key Vault reports for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Pkcs12 => "application/x-pkcs12",
            Format::Pem => "application/x-pem-file",
        }
    }
}

/// What certificate to generate. Every field has a default (RSA 2048, self-signed, PKCS#12,
/// 365 days, common name `emulator`), so JSON callers may send `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CertSpec {
    /// The leaf's key.
    pub key: KeyKind,
    /// Key of the root and intermediates (ignored when `chain_len` is 1).
    pub issuer_key: KeyKind,
    /// 1 = self-signed leaf; 2 = root → leaf; 3 = root → intermediate → leaf; 4 = two intermediates.
    pub chain_len: u8,
    pub format: Format,
    /// Validity of the leaf in days, starting now (minus a minute of clock skew).
    pub validity_days: u32,
    /// Days the leaf's validity starts before now (to make expired certificates:
    /// `not_before_days_ago` greater than `validity_days`).
    pub not_before_days_ago: u32,
    /// The leaf's subject common name.
    pub subject_cn: String,
}

impl Default for CertSpec {
    fn default() -> Self {
        CertSpec {
            key: KeyKind::Rsa2048,
            issuer_key: KeyKind::EcP256,
            chain_len: 1,
            format: Format::Pkcs12,
            validity_days: 365,
            not_before_days_ago: 0,
            subject_cn: "emulator".to_owned(),
        }
    }
}

/// Why a certificate could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("chain length {0} is out of range: use 1 (self-signed) to 4")]
    ChainLength(u8),
    #[error("validity of 0 days: a certificate needs at least one day")]
    ZeroValidity,
    #[error("could not generate a {0:?} key")]
    Key(KeyKind),
    #[error("could not build certificate {what}: {source}")]
    Certificate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("could not sign certificate {0}")]
    Sign(&'static str),
    #[error("could not write the PKCS#12 archive: {0}")]
    Pkcs12(String),
}

/// A generated certificate: the chain (leaf first, root last) and the leaf's private key.
pub struct Generated {
    pub certs_der: Vec<Vec<u8>>,
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
    /// Validity of the leaf, Unix seconds (Key Vault's `nbf`/`exp` attributes).
    pub not_before: i64,
    pub not_after: i64,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("certs", &self.certs_der.len())
            .field("key_pkcs8_der", &"<redacted>")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}
