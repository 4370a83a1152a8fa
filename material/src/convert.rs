//! A secret value → [`Material`]: bags or blocks, keys, the ordered chain.

use base64::Engine as _;
use sha1::Digest as _;
use zeroize::Zeroizing;

use crate::model::{
    ContentType, MAX_VALUE_BYTES, Material, MaterialError, MaterialWarning, RawKey,
};
use crate::{chain, key, pem_text, pkcs12};

/// Converts a Key Vault secret value to [`Material`].
///
/// `content_type` is the secret's `contentType`; `now` (unix seconds) is only used for the
/// expired / not-yet-valid warnings.
pub fn convert(value: &str, content_type: &str, now: i64) -> Result<Material, MaterialError> {
    let content_type: ContentType = content_type.parse()?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(MaterialError::TooLarge {
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    if value.trim().is_empty() {
        return Err(MaterialError::Empty);
    }
    let mut warnings = Vec::new();
    let (raw_keys, certs) = match content_type {
        ContentType::Pkcs12 => {
            let compact: Zeroizing<Vec<u8>> =
                Zeroizing::new(value.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
            let der = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(&*compact)
                    .map_err(|_| MaterialError::BadBase64 {
                        location: "the PKCS#12 value",
                    })?,
            );
            let bags = pkcs12::read(&der).map_err(|f| match f {
                pkcs12::Pkcs12Fault::Truncated => MaterialError::TruncatedDer {
                    what: "the PKCS#12 file".into(),
                },
                pkcs12::Pkcs12Fault::Malformed(reason) => MaterialError::MalformedPkcs12 { reason },
                pkcs12::Pkcs12Fault::PasswordProtected => MaterialError::PasswordProtected,
            })?;
            (
                bags.keys.into_iter().map(RawKey::Pkcs8).collect::<Vec<_>>(),
                bags.certs,
            )
        }
        ContentType::Pem => {
            let blocks = pem_text::read(value, &mut warnings)?;
            (blocks.keys, blocks.certs)
        }
    };
    assemble(raw_keys, certs, now, warnings)
}

/// Keys and certificates (any order) → [`Material`].
fn assemble(
    raw_keys: Vec<RawKey>,
    certs: Vec<Vec<u8>>,
    now: i64,
    mut warnings: Vec<MaterialWarning>,
) -> Result<Material, MaterialError> {
    // Certificates first: "no certificate" is the more useful message for a bare key.
    let mut parsed = Vec::with_capacity(certs.len());
    for (i, der) in certs.iter().enumerate() {
        parsed.push(chain::Cert::parse(der, i + 1)?);
    }
    if parsed.is_empty() {
        return Err(MaterialError::NoCertificate);
    }
    if raw_keys.is_empty() {
        return Err(MaterialError::NoPrivateKey);
    }
    let mut keys: Vec<key::PrivateKey> = Vec::with_capacity(raw_keys.len());
    let mut scalars = Vec::new();
    for (i, raw) in raw_keys.into_iter().enumerate() {
        let index = i + 1;
        let read = match &raw {
            RawKey::Pkcs8(d) => key::from_pkcs8(d),
            RawKey::Pkcs1(d) => key::from_pkcs1(d),
            RawKey::Sec1(d) => key::from_sec1(d),
        };
        match read.map_err(|f| match f {
            key::KeyFault::Truncated => MaterialError::TruncatedDer {
                what: format!("private key #{index}"),
            },
            key::KeyFault::Malformed(reason) => MaterialError::MalformedKey { index, reason },
            key::KeyFault::Unsupported(what) => MaterialError::UnsupportedKey { index, what },
        })? {
            key::Parsed::Ready(k) => push_distinct(&mut keys, k),
            key::Parsed::EcWithoutPublic(s) => scalars.push(s),
        }
    }
    // EC keys stored without their point: complete each against the certificates' points.
    let mut unresolved = 0;
    for s in scalars {
        match parsed
            .iter()
            .filter_map(chain::Cert::public)
            .find_map(|p| s.complete(p))
        {
            Some(k) => push_distinct(&mut keys, k),
            None => unresolved += 1,
        }
    }
    let chosen = chain::order(&parsed, &keys, &mut warnings)?;
    if keys.len() - 1 + unresolved > 0 {
        warnings.push(MaterialWarning::UnmatchedKeysDropped {
            count: keys.len() - 1 + unresolved,
        });
    }
    let leaf = &parsed[chosen.leaf];
    for &i in std::iter::once(&chosen.leaf).chain(&chosen.chain) {
        let c = &parsed[i];
        if c.not_after < now {
            warnings.push(MaterialWarning::Expired {
                subject: c.subject.clone(),
                not_after: c.not_after,
            });
        } else if c.not_before > now {
            warnings.push(MaterialWarning::NotYetValid {
                subject: c.subject.clone(),
                not_before: c.not_before,
            });
        }
    }
    let leaf_der = certs[chosen.leaf].clone();
    let thumbprint: [u8; 20] = sha1::Sha1::digest(&leaf_der).into();
    let sha256: [u8; 32] = sha2::Sha256::digest(&leaf_der).into();
    Ok(Material {
        chain: chosen.chain.iter().map(|&i| certs[i].clone()).collect(),
        private_key: Zeroizing::new(keys[chosen.key].pkcs8.to_vec()),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        thumbprint,
        sha256,
        subject: leaf.subject.clone(),
        warnings,
        leaf: leaf_der,
    })
}

/// Adds `k` unless the same key is already there (PFX files repeat keys).
fn push_distinct(keys: &mut Vec<key::PrivateKey>, k: key::PrivateKey) {
    if !keys.iter().any(|o| o.public == k.public) {
        keys.push(k);
    }
}

/// A PFX in the form Key Vault serves (absent password, 3DES, SHA-1 MAC): what the
/// emulator hands out for `application/x-pkcs12` secrets.
pub fn key_vault_pfx(certs_der: &[Vec<u8>], key_pkcs8: &[u8]) -> Vec<u8> {
    pkcs12::write_key_vault_pfx(certs_der, key_pkcs8)
}
