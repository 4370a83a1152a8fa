//! Private keys: every accepted form (PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`)
//! becomes PKCS#8, and its public key is *derived* from the private key so it can be compared
//! with a certificate's SubjectPublicKeyInfo.
//!
//! The derivation uses `ring`, already in the build through rustls: `RsaKeyPair::from_pkcs8`
//! checks that the RSA components are consistent (so the `n`/`e` we compare are the private
//! key's, not just bytes copied next to it), and `EcdsaKeyPair::from_pkcs8` recomputes `d·G`
//! and rejects a key whose embedded public point differs. RustCrypto's `rsa` would have added
//! a crate flagged by RUSTSEC-2023-0071 (cargo-deny) plus `p256`/`p384` builds, for no gain here.
//!
//! ring has no P-521 and no secp256k1 (Key Vault's `P-256K`), both of which Key Vault issues:
//! for those two, RustCrypto's `p521` and `k256` derive `d·G` from the scalar (see
//! [`derived_point`]) and a key whose stored point differs is refused, as ring does.

use ring::signature::{self, KeyPair};
use zeroize::Zeroizing;

use crate::der::{self, DerFault};

/// DER content octets of the OIDs we look for.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];

/// The named curves we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
    /// secp256k1, Key Vault's `P-256K`.
    Secp256k1,
}

impl Curve {
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
            Curve::Secp256k1 => OID_SECP256K1,
        }
    }
    fn from_oid(oid: &[u8]) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            OID_SECP256K1 => Some(Curve::Secp256k1),
            _ => None,
        }
    }
}

/// The uncompressed public point `04 || x || y` of `scalar` on a curve ring lacks; `None`
/// for a scalar that is not a valid private key of that curve (zero, ≥ the order, too long).
fn derived_point(curve: Curve, scalar: &[u8]) -> Option<Vec<u8>> {
    use p521::elliptic_curve::sec1::ToEncodedPoint;
    match curve {
        Curve::P521 => {
            let secret = p521::SecretKey::from_slice(scalar).ok()?;
            Some(
                secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            )
        }
        Curve::Secp256k1 => {
            let secret = k256::SecretKey::from_slice(scalar).ok()?;
            Some(
                secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            )
        }
        Curve::P256 | Curve::P384 => None,
    }
}

/// A public key in the form we compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
}

/// Why a private key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyFault {
    Truncated,
    /// Structurally wrong, or rejected by the crypto library (inconsistent components…).
    Malformed(&'static str),
    /// A well-formed key of a kind we do not handle; the string names it.
    Unsupported(String),
}

impl From<DerFault> for KeyFault {
    fn from(f: DerFault) -> Self {
        match f {
            DerFault::Truncated => KeyFault::Truncated,
            DerFault::Malformed => KeyFault::Malformed("not a DER structure"),
        }
    }
}

/// A private key, normalised to PKCS#8, with its derived public key.
pub(crate) struct PrivateKey {
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A private key as read: usable at once, or an EC scalar stored without its public point
/// (SEC1 and PKCS#8 make that point optional, and ring needs it).
pub(crate) enum Parsed {
    Ready(PrivateKey),
    EcWithoutPublic(EcScalar),
}

/// An EC private scalar whose public point is not stored. It is completed against a
/// certificate's point: ring recomputes `d·G` and accepts the pair only if they agree, so a
/// completed key is as verified as one that carried its point.
pub(crate) struct EcScalar {
    curve: Curve,
    /// The `privateKey` OCTET STRING element, header included.
    secret: Zeroizing<Vec<u8>>,
}

impl EcScalar {
    /// The full key if `public` (a certificate's key) is this scalar's public key.
    pub(crate) fn complete(&self, public: &PublicKey) -> Option<PrivateKey> {
        let PublicKey::Ec { curve, point } = public else {
            return None;
        };
        if *curve != self.curve {
            return None;
        }
        let public_field = der::tlv(
            der::CONTEXT_1,
            &[&der::tlv(der::BIT_STRING, &[&[0], point])],
        );
        let pkcs8 = ec_pkcs8(self.curve, &self.secret, &public_field);
        match from_pkcs8(&pkcs8) {
            Ok(Parsed::Ready(k)) if k.public == *public => Some(k),
            _ => None,
        }
    }
}

/// PKCS#8 for an EC key, as OpenSSL writes it: the curve in the algorithm identifier, the
/// `ECPrivateKey` holding the scalar and the public point.
fn ec_pkcs8(curve: Curve, secret_tlv: &[u8], public_tlv: &[u8]) -> Zeroizing<Vec<u8>> {
    let inner = der::tlv(
        der::SEQUENCE,
        &[&[der::INTEGER, 1, 1], secret_tlv, public_tlv],
    );
    let alg = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[OID_EC_PUBLIC_KEY]),
            &der::tlv(der::OID, &[curve.oid()]),
        ],
    );
    der::tlv(
        der::SEQUENCE,
        &[
            &[der::INTEGER, 1, 0],
            &alg,
            &der::tlv(der::OCTET_STRING, &[&inner]),
        ],
    )
}

/// The fields of a SEC1 `ECPrivateKey` we use.
struct EcFields<'a> {
    /// The `privateKey` OCTET STRING element, header included.
    secret: &'a [u8],
    curve: Option<Curve>,
    /// The `[1] publicKey` element, header included.
    public: Option<&'a [u8]>,
}

/// Reads an `ECPrivateKey` (SEC1): version, the scalar element, optional curve, optional point.
fn read_ec_private_key(der_bytes: &[u8]) -> Result<EcFields<'_>, KeyFault> {
    let (seq, _) = der::expect(der_bytes, der::SEQUENCE)?;
    let (version, rest) = der::expect(seq.value, der::INTEGER)?;
    if version.value != [1] {
        return Err(KeyFault::Malformed("EC key version is not 1"));
    }
    let (secret, mut rest) = der::expect(rest, der::OCTET_STRING)?;
    let mut curve = None;
    let mut public = None;
    while !rest.is_empty() {
        let (t, r) = der::read_tlv(rest)?;
        match t.tag {
            der::CONTEXT_0 => {
                let (oid, _) = der::expect(t.value, der::OID)?;
                curve = Some(Curve::from_oid(oid.value).ok_or_else(|| {
                    KeyFault::Unsupported(format!("EC key on curve {}", oid_text(oid.value)))
                })?);
            }
            der::CONTEXT_1 => public = Some(t.raw),
            _ => return Err(KeyFault::Malformed("unexpected field in EC key")),
        }
        rest = r;
    }
    Ok(EcFields {
        secret: secret.raw,
        curve,
        public,
    })
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b[skip..].to_vec()
}

/// Reads a PKCS#8 `PrivateKeyInfo` (v1 or v2).
pub(crate) fn from_pkcs8(der_bytes: &[u8]) -> Result<Parsed, KeyFault> {
    der::check_complete_sequence(der_bytes)?;
    let (info, _) = der::expect(der_bytes, der::SEQUENCE)?;
    let (_version, rest) = der::expect(info.value, der::INTEGER)?;
    let (alg, after_alg) = der::expect(rest, der::SEQUENCE)?;
    let (oid, params) = der::expect(alg.value, der::OID)?;
    let (private_key, _) = der::expect(after_alg, der::OCTET_STRING)?;
    match oid.value {
        OID_RSA_ENCRYPTION => {
            let pair = signature::RsaKeyPair::from_pkcs8(der_bytes)
                .map_err(|e| rsa_fault(e, der_bytes))?;
            let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
            Ok(Parsed::Ready(PrivateKey {
                pkcs8: Zeroizing::new(der_bytes.to_vec()),
                public: PublicKey::Rsa {
                    n: strip_zeros(&components.n),
                    e: strip_zeros(&components.e),
                },
            }))
        }
        OID_EC_PUBLIC_KEY => {
            let (curve_oid, _) = der::expect(params, der::OID)
                .map_err(|_| KeyFault::Unsupported("EC key without a named curve".into()))?;
            let curve = Curve::from_oid(curve_oid.value).ok_or_else(|| {
                KeyFault::Unsupported(format!("EC key on curve {}", oid_text(curve_oid.value)))
            })?;
            let EcFields {
                secret,
                curve: inner_curve,
                public,
            } = read_ec_private_key(private_key.value)?;
            if inner_curve.is_some_and(|c| c != curve) {
                return Err(KeyFault::Malformed("EC key names two different curves"));
            }
            if public.is_none() {
                return Ok(Parsed::EcWithoutPublic(EcScalar {
                    curve,
                    secret: Zeroizing::new(secret.to_vec()),
                }));
            }
            let alg = match curve {
                Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                Curve::P521 | Curve::Secp256k1 => {
                    return ec_without_ring(curve, secret, public, der_bytes);
                }
            };
            let rng = ring::rand::SystemRandom::new();
            let pair = signature::EcdsaKeyPair::from_pkcs8(alg, der_bytes, &rng).map_err(|_| {
                KeyFault::Malformed("EC key rejected (its public point is not its scalar's)")
            })?;
            Ok(Parsed::Ready(PrivateKey {
                pkcs8: Zeroizing::new(der_bytes.to_vec()),
                public: PublicKey::Ec {
                    curve,
                    point: pair.public_key().as_ref().to_vec(),
                },
            }))
        }
        other => Err(KeyFault::Unsupported(format!(
            "private key algorithm {}",
            oid_text(other)
        ))),
    }
}

/// A P-521 or secp256k1 key with its stored point: the point derived from the scalar must be
/// the stored one (what ring checks for the other curves).
fn ec_without_ring(
    curve: Curve,
    secret_tlv: &[u8],
    public_tlv: Option<&[u8]>,
    pkcs8: &[u8],
) -> Result<Parsed, KeyFault> {
    let (secret, _) = der::expect(secret_tlv, der::OCTET_STRING)?;
    let point = derived_point(curve, secret.value).ok_or(KeyFault::Malformed(
        "EC key rejected (its scalar is not a valid key)",
    ))?;
    if let Some(public_tlv) = public_tlv {
        let (field, _) = der::expect(public_tlv, der::CONTEXT_1)?;
        let (bits, _) = der::expect(field.value, der::BIT_STRING)?;
        if bits.value.split_first() != Some((&0, point.as_slice())) {
            return Err(KeyFault::Malformed(
                "EC key rejected (its public point is not its scalar's)",
            ));
        }
    }
    Ok(Parsed::Ready(PrivateKey {
        pkcs8: Zeroizing::new(pkcs8.to_vec()),
        public: PublicKey::Ec { curve, point },
    }))
}

fn rsa_fault(e: ring::error::KeyRejected, der_bytes: &[u8]) -> KeyFault {
    // ring only handles 2048–4096-bit moduli; say so rather than "invalid".
    match e.to_string().as_str() {
        "TooSmall" | "TooLarge" => KeyFault::Unsupported(format!(
            "RSA key of {} bits (2048 to 4096 are supported)",
            rsa_bits(der_bytes).unwrap_or(0)
        )),
        _ => KeyFault::Malformed("RSA key rejected (inconsistent components)"),
    }
}

/// The modulus size of a PKCS#8 RSA key, read without trusting it.
fn rsa_bits(pkcs8: &[u8]) -> Option<usize> {
    let (info, _) = der::expect(pkcs8, der::SEQUENCE).ok()?;
    let (_, rest) = der::expect(info.value, der::INTEGER).ok()?;
    let (_, rest) = der::expect(rest, der::SEQUENCE).ok()?;
    let (inner, _) = der::expect(rest, der::OCTET_STRING).ok()?;
    let (rsa, _) = der::expect(inner.value, der::SEQUENCE).ok()?;
    let (_, rest) = der::expect(rsa.value, der::INTEGER).ok()?;
    let (n, _) = der::expect(rest, der::INTEGER).ok()?;
    let n = strip_zeros(n.value);
    Some(n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize))
}

/// Wraps a PKCS#1 `RSAPrivateKey` into PKCS#8 and reads it.
pub(crate) fn from_pkcs1(der_bytes: &[u8]) -> Result<Parsed, KeyFault> {
    der::check_complete_sequence(der_bytes)?;
    let alg = der::tlv(
        der::SEQUENCE,
        &[&der::tlv(der::OID, &[OID_RSA_ENCRYPTION]), &[der::NULL, 0]],
    );
    let pkcs8 = der::tlv(
        der::SEQUENCE,
        &[
            &[der::INTEGER, 1, 0],
            &alg,
            &der::tlv(der::OCTET_STRING, &[der_bytes]),
        ],
    );
    from_pkcs8(&pkcs8)
}

/// Wraps a SEC1 `ECPrivateKey` into PKCS#8 (curve moved to the algorithm identifier, as
/// OpenSSL writes it) and reads it.
pub(crate) fn from_sec1(der_bytes: &[u8]) -> Result<Parsed, KeyFault> {
    der::check_complete_sequence(der_bytes)?;
    let EcFields {
        secret,
        curve,
        public,
    } = read_ec_private_key(der_bytes)?;
    // Without parameters the scalar's length still tells the curve apart.
    let scalar_len = der::expect(secret, der::OCTET_STRING)?.0.value.len();
    let curve = match (curve, scalar_len) {
        (Some(c), _) => c,
        (None, 32) => Curve::P256,
        (None, 48) => Curve::P384,
        (None, 66) => Curve::P521,
        (None, _) => return Err(KeyFault::Unsupported("EC key without a named curve".into())),
    };
    match public {
        Some(public) => from_pkcs8(&ec_pkcs8(curve, secret, public)),
        None => Ok(Parsed::EcWithoutPublic(EcScalar {
            curve,
            secret: Zeroizing::new(secret.to_vec()),
        })),
    }
}

/// Reads a certificate's SubjectPublicKeyInfo (DER) into the form we compare; `None` for
/// algorithms we do not handle (such a certificate can never be the leaf).
pub(crate) fn spki_public_key(spki: &[u8]) -> Option<PublicKey> {
    let (seq, _) = der::expect(spki, der::SEQUENCE).ok()?;
    let (alg, rest) = der::expect(seq.value, der::SEQUENCE).ok()?;
    let (bits, _) = der::expect(rest, der::BIT_STRING).ok()?;
    let (&unused, key) = bits.value.split_first()?;
    if unused != 0 {
        return None;
    }
    let (oid, params) = der::expect(alg.value, der::OID).ok()?;
    match oid.value {
        OID_RSA_ENCRYPTION => {
            let (rsa, _) = der::expect(key, der::SEQUENCE).ok()?;
            let (n, rest) = der::expect(rsa.value, der::INTEGER).ok()?;
            let (e, _) = der::expect(rest, der::INTEGER).ok()?;
            Some(PublicKey::Rsa {
                n: strip_zeros(n.value),
                e: strip_zeros(e.value),
            })
        }
        OID_EC_PUBLIC_KEY => {
            let (curve, _) = der::expect(params, der::OID).ok()?;
            Some(PublicKey::Ec {
                curve: Curve::from_oid(curve.value)?,
                point: key.to_vec(),
            })
        }
        _ => None,
    }
}

/// Dotted text of an OID's content octets (for messages).
pub(crate) fn oid_text(bytes: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in bytes {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
        if arcs.len() > 32 {
            break;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_text_reads_curve_names() {
        assert_eq!(oid_text(OID_P256), "1.2.840.10045.3.1.7");
        assert_eq!(oid_text(OID_P384), "1.3.132.0.34");
        assert_eq!(oid_text(OID_P521), "1.3.132.0.35");
        assert_eq!(oid_text(OID_SECP256K1), "1.3.132.0.10");
        assert_eq!(oid_text(OID_RSA_ENCRYPTION), "1.2.840.113549.1.1.1");
    }

    #[test]
    fn p521_and_secp256k1_keys_carrying_another_keys_point_are_refused() {
        use p521::elliptic_curve::sec1::ToEncodedPoint;
        use p521::pkcs8::EncodePrivateKey;
        let mut rng = rsa::rand_core::OsRng;
        let cases: [(Curve, Vec<u8>, Vec<u8>); 2] = [
            {
                let (a, b) = (
                    p521::SecretKey::random(&mut rng),
                    p521::SecretKey::random(&mut rng),
                );
                (
                    Curve::P521,
                    a.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                    b.public_key().to_encoded_point(false).as_bytes().to_vec(),
                )
            },
            {
                let (a, b) = (
                    k256::SecretKey::random(&mut rng),
                    k256::SecretKey::random(&mut rng),
                );
                (
                    Curve::Secp256k1,
                    a.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                    b.public_key().to_encoded_point(false).as_bytes().to_vec(),
                )
            },
        ];
        for (curve, pkcs8, other_point) in cases {
            let Ok(Parsed::Ready(own)) = from_pkcs8(&pkcs8) else {
                panic!("{curve:?}: own key refused");
            };
            let PublicKey::Ec { point, curve: c } = &own.public else {
                panic!("not EC");
            };
            assert_eq!(*c, curve);
            // The same key with the other key's point spliced in (same length, same place).
            let at = pkcs8
                .windows(point.len())
                .position(|w| w == point.as_slice())
                .expect("the point is stored");
            let mut forged = pkcs8.clone();
            forged[at..at + point.len()].copy_from_slice(&other_point);
            assert!(
                matches!(from_pkcs8(&forged), Err(KeyFault::Malformed(_))),
                "{curve:?}"
            );
        }
    }

    #[test]
    fn truncated_pkcs8_is_reported_as_truncated() {
        let rng = ring::rand::SystemRandom::new();
        let doc = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        let full = doc.as_ref();
        assert!(matches!(from_pkcs8(full), Ok(Parsed::Ready(_))));
        assert!(matches!(
            from_pkcs8(&full[..full.len() - 3]),
            Err(KeyFault::Truncated)
        ));
    }
}
