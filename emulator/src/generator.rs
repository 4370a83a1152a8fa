//! Certificates as Key Vault would hand them out: a key, a chain, and the secret value in
//! either of the two content types (`application/x-pkcs12`, `application/x-pem-file`).
//!
//! RSA keys come from the `rsa` crate because ring (which signs everything here) cannot
//! generate them; RSA generation is slow in unoptimised builds (about a second for 2048 bits,
//! half a minute for 4096), so issuers of chains use a P-256 key unless told otherwise.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use zeroize::Zeroizing;

pub use crate::spec::{CertSpec, Format, GenerateError, Generated, KeyKind, UnknownKeyKind};

fn key_pair(kind: KeyKind) -> Result<KeyPair, GenerateError> {
    let err = |_| GenerateError::Key(kind);
    let ec = |alg: &'static SignatureAlgorithm| KeyPair::generate_for(alg).map_err(err);
    let rsa_bits = match kind {
        KeyKind::EcP256 => return ec(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyKind::EcP384 => return ec(&rcgen::PKCS_ECDSA_P384_SHA384),
        // rcgen (ring) cannot sign with these: `generate` hands them to `x509`.
        KeyKind::EcP521 | KeyKind::EcP256K => return Err(GenerateError::Key(kind)),
        KeyKind::Rsa2048 => 2048,
        KeyKind::Rsa3072 => 3072,
        KeyKind::Rsa4096 => 4096,
    };
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, rsa_bits).map_err(|_| GenerateError::Key(kind))?;
    let der = key.to_pkcs8_der().map_err(|_| GenerateError::Key(kind))?;
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).map_err(err)
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x40; // and no leading zero byte to strip
    rcgen::SerialNumber::from_slice(&bytes)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Generate a key and chain as described by `spec`.
pub fn generate(spec: &CertSpec) -> Result<Generated, GenerateError> {
    if !(1..=4).contains(&spec.chain_len) {
        return Err(GenerateError::ChainLength(spec.chain_len));
    }
    if spec.validity_days == 0 {
        return Err(GenerateError::ZeroValidity);
    }
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let not_before =
        now - time::Duration::minutes(1) - time::Duration::days(spec.not_before_days_ago.into());
    let not_after = not_before + time::Duration::days(spec.validity_days.into());
    let cert_err = |what| move |source| GenerateError::Certificate { what, source };
    if super::x509::needed(spec) {
        return super::x509::generate(spec, not_before, not_after);
    }

    let leaf_key = key_pair(spec.key)?;
    let mut leaf = CertificateParams::new(vec![spec.subject_cn.clone()])
        .unwrap_or_else(|_| CertificateParams::default());
    leaf.distinguished_name = name(&spec.subject_cn);
    leaf.serial_number = Some(random_serial());
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];

    let mut certs_der = Vec::with_capacity(spec.chain_len.into());
    if spec.chain_len == 1 {
        let cert = leaf.self_signed(&leaf_key).map_err(cert_err("leaf"))?;
        certs_der.push(cert.der().to_vec());
    } else {
        // Root first, each issuer certifying the next; collected root-first then reversed.
        let ca_params = |cn: String, path_len: Option<u8>| {
            let mut p = CertificateParams::default();
            p.distinguished_name = name(&cn);
            p.serial_number = Some(random_serial());
            p.not_before = not_before - time::Duration::days(1);
            p.not_after = not_after + time::Duration::days(365);
            p.is_ca = IsCa::Ca(match path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            });
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.use_authority_key_identifier_extension = true;
            p
        };
        let mut chain_root_first = Vec::new();
        let root = rcgen::CertifiedIssuer::self_signed(
            ca_params(format!("{} Root CA", spec.subject_cn), None),
            key_pair(spec.issuer_key)?,
        )
        .map_err(cert_err("root"))?;
        chain_root_first.push(root.der().to_vec());
        let mut issuer = root;
        for i in 1..spec.chain_len - 1 {
            let remaining = spec.chain_len - 2 - i;
            let next = rcgen::CertifiedIssuer::signed_by(
                ca_params(
                    format!("{} Intermediate CA {i}", spec.subject_cn),
                    Some(remaining),
                ),
                key_pair(spec.issuer_key)?,
                &issuer,
            )
            .map_err(cert_err("intermediate"))?;
            chain_root_first.push(next.der().to_vec());
            issuer = next;
        }
        let cert = leaf
            .signed_by(&leaf_key, &issuer)
            .map_err(cert_err("leaf"))?;
        chain_root_first.push(cert.der().to_vec());
        chain_root_first.reverse();
        certs_der = chain_root_first;
    }
    Ok(Generated {
        certs_der,
        key_pkcs8_der: Zeroizing::new(leaf_key.serialize_der()),
        not_before: not_before.unix_timestamp(),
        not_after: not_after.unix_timestamp(),
    })
}

/// The PFX Key Vault would serve, quirks included: the **absent** password (strict readers
/// such as p12-keystore refuse it with the empty one; OpenSSL and Windows try both), the
/// key in a `pbeWithSHA1And3-KeyTripleDES-CBC` shrouded bag, the chain (leaf first) in a
/// 3DES `EncryptedData`, a SHA-1 MAC, 2,000 iterations — as in the recorded real secret.
pub fn to_pkcs12(generated: &Generated) -> Result<Vec<u8>, GenerateError> {
    Ok(akv_sync_material::key_vault_pfx(
        &generated.certs_der,
        &generated.key_pkcs8_der,
    ))
}

/// The PEM text Key Vault would serve: `PRIVATE KEY` (PKCS#8) first, then each certificate
/// (leaf first), LF line endings, 64-character lines, ending in a newline.
pub fn to_pem(generated: &Generated) -> Zeroizing<String> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let mut out = Zeroizing::new(pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", generated.key_pkcs8_der.to_vec()),
        config,
    ));
    for der in &generated.certs_der {
        out.push_str(&pem::encode_config(
            &pem::Pem::new("CERTIFICATE", der.clone()),
            config,
        ));
    }
    out
}

/// The secret value for `format`: PEM text, or standard base64 of the PFX (no line breaks).
pub fn secret_value(
    generated: &Generated,
    format: Format,
) -> Result<Zeroizing<String>, GenerateError> {
    use base64::Engine;
    Ok(match format {
        Format::Pem => to_pem(generated),
        Format::Pkcs12 => {
            let pfx = Zeroizing::new(to_pkcs12(generated)?);
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pfx))
        }
    })
}

/// A random RFC 4122 version 4 identifier in its usual text form.
pub(crate) fn uuid_like() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: KeyKind, chain_len: u8) -> CertSpec {
        CertSpec {
            key,
            chain_len,
            ..CertSpec::default()
        }
    }

    #[test]
    fn chain_is_leaf_first_and_each_certificate_is_issued_by_the_next() {
        let g = generate(&spec(KeyKind::EcP256, 4)).unwrap();
        assert_eq!(g.certs_der.len(), 4);
        let parsed: Vec<_> = g
            .certs_der
            .iter()
            .map(|d| x509_parser::parse_x509_certificate(d).unwrap().1)
            .collect();
        for pair in parsed.windows(2) {
            assert_eq!(pair[0].issuer(), pair[1].subject());
            pair[0]
                .verify_signature(Some(pair[1].public_key()))
                .unwrap();
        }
        let root = parsed.last().unwrap();
        assert_eq!(root.issuer(), root.subject());
        assert!(!parsed[0].is_ca());
    }

    #[test]
    fn self_signed_leaf_verifies_with_its_own_key() {
        let g = generate(&spec(KeyKind::EcP384, 1)).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&g.certs_der[0]).unwrap();
        cert.verify_signature(None).unwrap();
        assert_eq!(cert.validity().not_before.timestamp(), g.not_before);
        assert_eq!(cert.validity().not_after.timestamp(), g.not_after);
    }

    #[test]
    fn pem_puts_the_key_first_then_the_chain() {
        let g = generate(&spec(KeyKind::EcP256, 2)).unwrap();
        let text = to_pem(&g);
        let blocks = pem::parse_many(text.as_bytes()).unwrap();
        let tags: Vec<_> = blocks.iter().map(|b| b.tag().to_owned()).collect();
        assert_eq!(tags, ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]);
        assert_eq!(blocks[1].contents(), g.certs_der[0].as_slice());
        assert!(text.ends_with('\n') && !text.contains('\r'));
    }

    #[test]
    fn pkcs12_has_the_absent_password_and_holds_key_and_chain() {
        use base64::Engine;
        let g = generate(&spec(KeyKind::Rsa2048, 2)).unwrap();
        let pfx = to_pkcs12(&g).unwrap();
        // Like Key Vault's: a strict reader refuses the empty password (MAC mismatch)...
        assert!(matches!(
            p12_keystore::KeyStore::from_pkcs12(
                &pfx,
                "",
                p12_keystore::Pkcs12ImportPolicy::default()
            ),
            Err(p12_keystore::error::Error::MacError(_))
        ));
        // ...and the agent's reader finds exactly the key and the chain.
        let value = base64::engine::general_purpose::STANDARD.encode(&pfx);
        let m = akv_sync_material::convert(&value, "application/x-pkcs12", 0).unwrap();
        assert_eq!(m.private_key.as_slice(), g.key_pkcs8_der.as_slice());
        assert_eq!(m.leaf, g.certs_der[0]);
        assert_eq!(m.chain, g.certs_der[1..]);
    }

    #[test]
    fn pkcs12_uses_triple_des_and_a_sha1_mac_like_key_vault() {
        let g = generate(&spec(KeyKind::EcP256, 1)).unwrap();
        let pfx = to_pkcs12(&g).unwrap();
        let contains = |needle: &[u8]| pfx.windows(needle.len()).any(|w| w == needle);
        // OID 1.2.840.113549.1.12.1.3 pbeWithSHAAnd3-KeyTripleDES-CBC.
        let three_des = [
            0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03,
        ];
        // OID 1.3.14.3.2.26 sha1 (the MAC's digest).
        let sha1 = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
        // OID 1.2.840.113549.1.5.13 PBES2 must not appear (that would be AES).
        let pbes2 = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
        ];
        assert!(contains(&three_des));
        assert!(contains(&sha1));
        assert!(!contains(&pbes2));
    }

    #[test]
    fn key_kinds_parse_from_their_json_names() {
        assert_eq!("ecP256".parse(), Ok(KeyKind::EcP256));
        assert_eq!("EC-P384".parse(), Ok(KeyKind::EcP384));
        assert_eq!("rsa4096".parse(), Ok(KeyKind::Rsa4096));
        assert_eq!("dsa".parse::<KeyKind>(), Err(UnknownKeyKind("dsa".into())));
    }

    #[test]
    fn out_of_range_chain_length_is_refused() {
        assert!(matches!(
            generate(&spec(KeyKind::EcP256, 5)),
            Err(GenerateError::ChainLength(5))
        ));
        assert!(matches!(
            generate(&spec(KeyKind::EcP256, 0)),
            Err(GenerateError::ChainLength(0))
        ));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let g = generate(&spec(KeyKind::EcP256, 1)).unwrap();
        let shown = format!("{g:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(&g.key_pkcs8_der[..8])));
    }
}
