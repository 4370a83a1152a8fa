//! Chains with the curves rcgen cannot sign with ring: EC P-521 and secp256k1 (Key Vault's
//! `P-256K`), as leaves and as issuers. rcgen's ring backend has neither curve (P-521 needs its
//! aws-lc-rs backend, secp256k1 it has not at all), so these certificates are written here:
//! the same fields rcgen writes for the other kinds (v3, random serial, CN, validity, basic
//! constraints, key usage, subject/authority key identifiers, the leaf's DNS name and
//! server/client EKU), signed by RustCrypto's `p521`/`k256` (ECDSA with SHA-512 / SHA-256)
//! or by ring for RSA, P-256 and P-384 issuers or leaves mixed into such a chain.

use p521::elliptic_curve::sec1::ToEncodedPoint;
use p521::pkcs8::EncodePrivateKey;
use ring::signature::{self, KeyPair};
use sha1::Digest;
use zeroize::Zeroizing;

use super::spec::{CertSpec, GenerateError, Generated, KeyKind};

/// Whether `spec` names a curve this module must build (leaf or, in a chain, issuer).
pub(crate) fn needed(spec: &CertSpec) -> bool {
    let by_hand = |k: KeyKind| matches!(k, KeyKind::EcP521 | KeyKind::EcP256K);
    by_hand(spec.key) || (spec.chain_len > 1 && by_hand(spec.issuer_key))
}

// DER tags and the OIDs' content octets.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BOOLEAN: u8 = 0x01;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// One DER element.
fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

fn oid(content: &[u8]) -> Vec<u8> {
    tlv(OID, &[content])
}

/// A key that signs, with its PKCS#8 form and its SubjectPublicKeyInfo.
struct Key {
    pkcs8: Zeroizing<Vec<u8>>,
    /// The public key's BIT STRING content (the key identifiers hash it).
    public: Vec<u8>,
    spki: Vec<u8>,
    signer: Signer,
}

enum Signer {
    Rsa(signature::RsaKeyPair),
    Ring(signature::EcdsaKeyPair),
    P521(p521::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
}

impl Key {
    fn generate(kind: KeyKind) -> Result<Key, GenerateError> {
        let mut rng = rsa::rand_core::OsRng;
        let ec_spki = |curve: &[u8], point: &[u8]| {
            tlv(
                SEQUENCE,
                &[
                    &tlv(SEQUENCE, &[&oid(OID_EC_PUBLIC_KEY), &oid(curve)]),
                    &tlv(BIT_STRING, &[&[0], point]),
                ],
            )
        };
        match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
                let bits = match kind {
                    KeyKind::Rsa2048 => 2048,
                    KeyKind::Rsa3072 => 3072,
                    _ => 4096,
                };
                let key = rsa::RsaPrivateKey::new(&mut rng, bits)
                    .map_err(|_| GenerateError::Key(kind))?;
                let der = key.to_pkcs8_der().map_err(|_| GenerateError::Key(kind))?;
                let pair = signature::RsaKeyPair::from_pkcs8(der.as_bytes())
                    .map_err(|_| GenerateError::Key(kind))?;
                let public = pair.public().as_ref().to_vec();
                let spki = tlv(
                    SEQUENCE,
                    &[
                        &tlv(SEQUENCE, &[&oid(OID_RSA_ENCRYPTION), &[NULL, 0]]),
                        &tlv(BIT_STRING, &[&[0], &public]),
                    ],
                );
                Ok(Key {
                    pkcs8: Zeroizing::new(der.as_bytes().to_vec()),
                    public,
                    spki,
                    signer: Signer::Rsa(pair),
                })
            }
            KeyKind::EcP256 | KeyKind::EcP384 => {
                let (alg, curve) = if kind == KeyKind::EcP256 {
                    (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, OID_P256)
                } else {
                    (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, OID_P384)
                };
                let ring_rng = ring::rand::SystemRandom::new();
                let doc = signature::EcdsaKeyPair::generate_pkcs8(alg, &ring_rng)
                    .map_err(|_| GenerateError::Key(kind))?;
                let pair = signature::EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &ring_rng)
                    .map_err(|_| GenerateError::Key(kind))?;
                let public = pair.public_key().as_ref().to_vec();
                Ok(Key {
                    pkcs8: Zeroizing::new(doc.as_ref().to_vec()),
                    spki: ec_spki(curve, &public),
                    public,
                    signer: Signer::Ring(pair),
                })
            }
            KeyKind::EcP521 => {
                let secret = p521::SecretKey::random(&mut rng);
                let public = secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                let pkcs8 = secret
                    .to_pkcs8_der()
                    .map_err(|_| GenerateError::Key(kind))?;
                let signer = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes())
                    .map_err(|_| GenerateError::Key(kind))?;
                Ok(Key {
                    pkcs8: Zeroizing::new(pkcs8.as_bytes().to_vec()),
                    spki: ec_spki(OID_P521, &public),
                    public,
                    signer: Signer::P521(signer),
                })
            }
            KeyKind::EcP256K => {
                let secret = k256::SecretKey::random(&mut rng);
                let public = secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                let pkcs8 = secret
                    .to_pkcs8_der()
                    .map_err(|_| GenerateError::Key(kind))?;
                let signer = k256::ecdsa::SigningKey::from(&secret);
                Ok(Key {
                    pkcs8: Zeroizing::new(pkcs8.as_bytes().to_vec()),
                    spki: ec_spki(OID_SECP256K1, &public),
                    public,
                    signer: Signer::K256(signer),
                })
            }
        }
    }

    /// The signature algorithm identifier this key signs with.
    fn algorithm(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(_) => tlv(SEQUENCE, &[&oid(OID_SHA256_WITH_RSA), &[NULL, 0]]),
            Signer::Ring(pair) => {
                let alg = if pair.public_key().as_ref().len() == 65 {
                    OID_ECDSA_SHA256
                } else {
                    OID_ECDSA_SHA384
                };
                tlv(SEQUENCE, &[&oid(alg)])
            }
            Signer::P521(_) => tlv(SEQUENCE, &[&oid(OID_ECDSA_SHA512)]),
            Signer::K256(_) => tlv(SEQUENCE, &[&oid(OID_ECDSA_SHA256)]),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, GenerateError> {
        use p521::ecdsa::signature::Signer as _;
        let failed = |_| GenerateError::Sign("with the issuer's key");
        let rng = ring::rand::SystemRandom::new();
        Ok(match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(failed)?;
                sig
            }
            Signer::Ring(pair) => pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            Signer::P521(key) => {
                let sig: p521::ecdsa::Signature = key.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Signer::K256(key) => {
                let sig: k256::ecdsa::Signature = key.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        })
    }

    /// SHA-1 of the public key bits (RFC 5280 §4.2.1.2, method 1; what rcgen and openssl use).
    fn key_id(&self) -> Vec<u8> {
        sha1::Sha1::digest(&self.public).to_vec()
    }
}

fn name(cn: &str) -> Vec<u8> {
    let atv = tlv(
        SEQUENCE,
        &[&oid(OID_COMMON_NAME), &tlv(UTF8_STRING, &[cn.as_bytes()])],
    );
    tlv(SEQUENCE, &[&tlv(SET, &[&atv])])
}

fn time(t: time::OffsetDateTime) -> Vec<u8> {
    let (year, rest) = (
        t.year(),
        format!(
            "{:02}{:02}{:02}{:02}{:02}Z",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
    );
    if (1950..2050).contains(&year) {
        tlv(UTC_TIME, &[format!("{:02}{rest}", year % 100).as_bytes()])
    } else {
        tlv(GENERALIZED_TIME, &[format!("{year:04}{rest}").as_bytes()])
    }
}

fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let flag: &[u8] = if critical { &[BOOLEAN, 1, 0xff] } else { &[] };
    tlv(SEQUENCE, &[&oid(id), flag, &tlv(OCTET_STRING, &[value])])
}

struct Issuer<'a> {
    name: Vec<u8>,
    key: &'a Key,
}

/// One certificate for `key`, named `cn`, signed by `issuer` (or by itself).
fn certificate(
    cn: &str,
    key: &Key,
    issuer: Option<&Issuer<'_>>,
    ca_path_len: Option<Option<u8>>,
    validity: (time::OffsetDateTime, time::OffsetDateTime),
) -> Result<Vec<u8>, GenerateError> {
    let subject = name(cn);
    let (issuer_name, signer) = match issuer {
        Some(i) => (i.name.clone(), i.key),
        None => (subject.clone(), key),
    };
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let mut extensions = Vec::new();
    match ca_path_len {
        Some(path_len) => {
            let len = path_len.map(|n| tlv(INTEGER, &[&[n]])).unwrap_or_default();
            extensions.push(extension(
                OID_BASIC_CONSTRAINTS,
                true,
                &tlv(SEQUENCE, &[&[BOOLEAN, 1, 0xff], &len]),
            ));
            // digitalSignature, keyCertSign, cRLSign
            extensions.push(extension(OID_KEY_USAGE, true, &[BIT_STRING, 2, 1, 0x86]));
        }
        None => {
            extensions.push(extension(OID_BASIC_CONSTRAINTS, true, &tlv(SEQUENCE, &[])));
            // digitalSignature, keyEncipherment
            extensions.push(extension(OID_KEY_USAGE, true, &[BIT_STRING, 2, 5, 0xa0]));
            extensions.push(extension(
                OID_SUBJECT_ALT_NAME,
                false,
                &tlv(SEQUENCE, &[&tlv(0x82, &[cn.as_bytes()])]),
            ));
            extensions.push(extension(
                OID_EXT_KEY_USAGE,
                false,
                &tlv(SEQUENCE, &[&oid(OID_SERVER_AUTH), &oid(OID_CLIENT_AUTH)]),
            ));
        }
    }
    extensions.push(extension(
        OID_SUBJECT_KEY_ID,
        false,
        &tlv(OCTET_STRING, &[&key.key_id()]),
    ));
    extensions.push(extension(
        OID_AUTHORITY_KEY_ID,
        false,
        &tlv(SEQUENCE, &[&tlv(0x80, &[&signer.key_id()])]),
    ));
    let ext_refs: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    let algorithm = signer.algorithm();
    let tbs = tlv(
        SEQUENCE,
        &[
            &tlv(0xa0, &[&[INTEGER, 1, 2]]),
            &tlv(INTEGER, &[&serial]),
            &algorithm,
            &issuer_name,
            &tlv(SEQUENCE, &[&time(validity.0), &time(validity.1)]),
            &subject,
            &key.spki,
            &tlv(0xa3, &[&tlv(SEQUENCE, &ext_refs)]),
        ],
    );
    let signature = signer.sign(&tbs)?;
    Ok(tlv(
        SEQUENCE,
        &[&tbs, &algorithm, &tlv(BIT_STRING, &[&[0], &signature])],
    ))
}

/// The chain of `spec` (leaf first), its validity already computed by the caller.
pub(crate) fn generate(
    spec: &CertSpec,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<Generated, GenerateError> {
    let leaf_key = Key::generate(spec.key)?;
    let leaf_validity = (not_before, not_after);
    let mut certs_root_first = Vec::new();
    let leaf = if spec.chain_len == 1 {
        certificate(&spec.subject_cn, &leaf_key, None, None, leaf_validity)?
    } else {
        let ca_validity = (
            not_before - time::Duration::days(1),
            not_after + time::Duration::days(365),
        );
        let mut keys = Vec::new();
        for _ in 1..spec.chain_len {
            keys.push(Key::generate(spec.issuer_key)?);
        }
        let root_cn = format!("{} Root CA", spec.subject_cn);
        certs_root_first.push(certificate(
            &root_cn,
            &keys[0],
            None,
            Some(None),
            ca_validity,
        )?);
        let mut issuer = Issuer {
            name: name(&root_cn),
            key: &keys[0],
        };
        // keys[0] is the root's; each further key is an intermediate's.
        for (i, key) in keys.iter().enumerate().skip(1) {
            let cn = format!("{} Intermediate CA {i}", spec.subject_cn);
            let remaining = spec.chain_len - 2 - i as u8;
            certs_root_first.push(certificate(
                &cn,
                key,
                Some(&issuer),
                Some(Some(remaining)),
                ca_validity,
            )?);
            issuer = Issuer {
                name: name(&cn),
                key,
            };
        }
        certificate(
            &spec.subject_cn,
            &leaf_key,
            Some(&issuer),
            None,
            leaf_validity,
        )?
    };
    certs_root_first.push(leaf);
    certs_root_first.reverse();
    Ok(Generated {
        certs_der: certs_root_first,
        key_pkcs8_der: leaf_key.pkcs8,
        not_before: not_before.unix_timestamp(),
        not_after: not_after.unix_timestamp(),
    })
}
