//! The types the material modules share: content types, errors, warnings, the result.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use zeroize::Zeroizing;

/// Key Vault refuses secret values over 25 KB; anything bigger did not come from it.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// The longest path (leaf included) we accept; real chains have 2 to 4 certificates.
pub const MAX_CHAIN_DEPTH: usize = 10;

/// The two content types Key Vault gives certificate secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/x-pkcs12`: the value is a base64 PFX without a password.
    Pkcs12,
    /// `application/x-pem-file`: the value is PEM text (Key Vault puts the key first).
    Pem,
}

impl ContentType {
    /// The media type as Key Vault writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Pkcs12 => "application/x-pkcs12",
            ContentType::Pem => "application/x-pem-file",
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContentType {
    type Err = MaterialError;

    /// Case-insensitive; parameters (`; charset=…`) and surrounding blanks are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let essence = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-pkcs12" => Ok(ContentType::Pkcs12),
            "application/x-pem-file" => Ok(ContentType::Pem),
            _ => Err(MaterialError::UnknownContentType {
                content_type: printable(s, 80),
            }),
        }
    }
}

/// Why a secret value was refused. Nothing is produced for a refused value. No message ever
/// contains key bytes or any part of the secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaterialError {
    #[error(
        "unknown content type {content_type:?}: expected application/x-pkcs12 or application/x-pem-file"
    )]
    UnknownContentType { content_type: String },
    #[error(
        "the secret value is {size} bytes, over Key Vault's limit of {limit}: it did not come from Key Vault"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("the secret value is empty")]
    Empty,
    #[error("{location} is not valid base64")]
    BadBase64 { location: &'static str },
    #[error("{what} is truncated: its DER length says more bytes follow than there are")]
    TruncatedDer { what: String },
    #[error("the PKCS#12 file is malformed: {reason}")]
    MalformedPkcs12 { reason: String },
    #[error(
        "this PFX needs a password; Key Vault certificates have none — was it uploaded as a plain secret?"
    )]
    PasswordProtected,
    #[error(
        "the PEM value holds an encrypted private key; Key Vault certificates have none — was it uploaded as a plain secret?"
    )]
    EncryptedPemKey,
    #[error(
        "the value holds no PEM block (is the content type right? a PFX is application/x-pkcs12)"
    )]
    NotPem,
    #[error("the PEM text is malformed: {reason}")]
    MalformedPem { reason: &'static str },
    #[error("certificate #{index} (in input order, from 1) is malformed: {reason}")]
    MalformedCertificate { index: usize, reason: String },
    #[error("private key #{index} (in input order, from 1) is malformed: {reason}")]
    MalformedKey { index: usize, reason: &'static str },
    #[error("private key #{index} is not supported: {what} (RSA 2048–4096 and EC P-256/P-384 are)")]
    UnsupportedKey { index: usize, what: String },
    #[error("the value holds no certificate")]
    NoCertificate,
    #[error("the value holds no private key")]
    NoPrivateKey,
    #[error(
        "the private key matches none of the {certificates} certificate(s): the key and the certificate do not belong together"
    )]
    KeyMatchesNoCertificate { certificates: usize },
    #[error(
        "{count} different private keys each match a certificate: cannot tell which one is the leaf's"
    )]
    AmbiguousPrivateKeys { count: usize },
    #[error("the chain from the leaf is {depth} certificates deep, over the limit of {limit}")]
    ChainTooDeep { depth: usize, limit: usize },
}

/// Something worth telling the operator about a value that still converted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaterialWarning {
    /// A certificate on no path from the leaf was left out.
    UnrelatedCertificateDropped { subject: String },
    /// Private keys that match no certificate were left out.
    UnmatchedKeysDropped { count: usize },
    /// A certificate of the chain has expired (it is installed anyway: the vault decides).
    Expired { subject: String, not_after: i64 },
    /// A certificate of the chain is not valid yet.
    NotYetValid { subject: String, not_before: i64 },
    /// A PEM block of a type we do not use was ignored.
    IgnoredPemBlock { label: String },
}

impl fmt::Display for MaterialWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaterialWarning::UnrelatedCertificateDropped { subject } => write!(
                f,
                "certificate {subject:?} is on no path from the leaf and was left out"
            ),
            MaterialWarning::UnmatchedKeysDropped { count } => {
                write!(
                    f,
                    "{count} private key(s) matching no certificate were left out"
                )
            }
            MaterialWarning::Expired { subject, not_after } => write!(
                f,
                "certificate {subject:?} expired at {} (installed anyway)",
                utc(*not_after)
            ),
            MaterialWarning::NotYetValid {
                subject,
                not_before,
            } => write!(
                f,
                "certificate {subject:?} is not valid before {} (installed anyway)",
                utc(*not_before)
            ),
            MaterialWarning::IgnoredPemBlock { label } => {
                write!(f, "PEM block {label:?} was ignored")
            }
        }
    }
}

/// A certificate with its key and chain, ready to be written.
#[derive(Clone)]
pub struct Material {
    /// The leaf certificate (DER): the one whose public key matches `private_key`.
    pub leaf: Vec<u8>,
    /// The issuers (DER), in order: each certifies the one before; the root last if present.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub private_key: Zeroizing<Vec<u8>>,
    /// The leaf's validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-1 of the leaf DER: the thumbprint Azure shows.
    pub thumbprint: [u8; 20],
    /// SHA-256 of the leaf DER.
    pub sha256: [u8; 32],
    /// The leaf's subject (RFC 4514 text), for logs.
    pub subject: String,
    /// What was dropped or is worth a look.
    pub warnings: Vec<MaterialWarning>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("subject", &self.subject)
            .field("thumbprint", &hex::encode_upper(self.thumbprint))
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain.len())
            .field("private_key", &"<redacted>")
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Material {
    /// The file the store writes (SPEC §3): leaf, chain…, then the PKCS#8 `PRIVATE KEY`.
    pub fn full_chain_pem(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(self.fullchain_pem());
        out.extend_from_slice(&self.key_pem());
        out
    }

    /// The leaf alone (certbot's `cert.pem`).
    pub fn cert_pem(&self) -> Vec<u8> {
        let mut out = Vec::new();
        pem_block(&mut out, "CERTIFICATE", &self.leaf);
        out
    }

    /// The issuers alone, in order (certbot's `chain.pem`); empty for a lone certificate.
    pub fn chain_pem(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.chain {
            pem_block(&mut out, "CERTIFICATE", c);
        }
        out
    }

    /// Leaf then issuers (certbot's `fullchain.pem`).
    pub fn fullchain_pem(&self) -> Vec<u8> {
        let mut out = self.cert_pem();
        out.extend_from_slice(&self.chain_pem());
        out
    }

    /// The private key, PKCS#8 PEM (certbot's `privkey.pem`).
    pub fn key_pem(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        pem_block(&mut out, "PRIVATE KEY", &self.private_key);
        out
    }

    /// The leaf alone, DER (the `certDer` output).
    pub fn cert_der(&self) -> Vec<u8> {
        self.leaf.clone()
    }

    /// Key, leaf and issuers as PKCS#12 in today's form (PBES2 AES-256-CBC, HMAC-SHA256
    /// MAC; see `pkcs12/modern.rs`) under `password` (may be empty), key and leaf named
    /// `friendly_name`. The same inputs give the same bytes.
    pub fn pfx(&self, password: &str, friendly_name: &str) -> Zeroizing<Vec<u8>> {
        let certs: Vec<&[u8]> = std::iter::once(self.leaf.as_slice())
            .chain(self.chain.iter().map(Vec::as_slice))
            .collect();
        crate::pkcs12::modern::write_pfx(&certs, &self.private_key, password, friendly_name)
    }

    /// The thumbprint as Azure prints it (upper-case hex).
    pub fn thumbprint_hex(&self) -> String {
        hex::encode_upper(self.thumbprint)
    }
}

/// Appends one PEM block: LF line endings, 64-column base64.
fn pem_block(out: &mut Vec<u8>, label: &str, der: &[u8]) {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    out.reserve(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
}

/// A private key as found, before normalisation.
pub(crate) enum RawKey {
    Pkcs8(Zeroizing<Vec<u8>>),
    Pkcs1(Zeroizing<Vec<u8>>),
    Sec1(Zeroizing<Vec<u8>>),
}

/// `s` with control characters removed, cut to `max` characters (for messages).
pub(crate) fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Unix seconds as an RFC 3339 UTC time (for warnings).
pub(crate) fn utc(secs: i64) -> String {
    match x509_parser::time::ASN1Time::from_timestamp(secs) {
        Ok(t) => t.to_string(),
        Err(_) => format!("unix time {secs}"),
    }
}
