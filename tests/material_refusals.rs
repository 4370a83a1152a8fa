//! Every refusal has its own variant, and no message or Debug output carries the secret.
//! Fixtures are made in-process with rcgen (EC keys: fast).

use akv_sync_material::{self as material, ContentType, MaterialError, MaterialWarning};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};

const PEM: &str = "application/x-pem-file";
const PFX: &str = "application/x-pkcs12";
const NOW: i64 = 1_800_000_000;

struct Made {
    cert_pem: String,
    key_pem: String,
}

fn params(cn: &str, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.use_authority_key_identifier_extension = true;
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

/// A chain of `depth` certificates, leaf first.
fn chain(depth: usize, tag: &str) -> Vec<Made> {
    let mut made = Vec::new();
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = params(&format!("{tag} root"), true);
    let root = root_params.self_signed(&root_key).unwrap();
    made.push(Made {
        cert_pem: root.pem(),
        key_pem: root_key.serialize_pem(),
    });
    let mut issuer = Issuer::new(root_params, root_key);
    for level in 1..depth {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let is_leaf = level == depth - 1;
        let p = params(&format!("{tag} {level}"), !is_leaf);
        let cert = p.signed_by(&key, &issuer).unwrap();
        made.push(Made {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        });
        issuer = Issuer::new(p, key);
    }
    made.reverse();
    made
}

fn pem_of(chain: &[Made]) -> String {
    chain[0].key_pem.clone()
        + &chain
            .iter()
            .map(|m| m.cert_pem.as_str())
            .collect::<String>()
}

#[test]
fn content_type_is_read_case_insensitively_with_parameters() {
    assert_eq!(
        "Application/X-PEM-File; charset=utf-8"
            .parse::<ContentType>()
            .unwrap(),
        ContentType::Pem
    );
    assert_eq!(
        " application/x-pkcs12 ".parse::<ContentType>().unwrap(),
        ContentType::Pkcs12
    );
}

#[test]
fn unknown_content_type_is_refused_and_named() {
    let c = chain(1, "ct");
    assert_eq!(
        material::convert(&pem_of(&c), "application/json", NOW).unwrap_err(),
        MaterialError::UnknownContentType {
            content_type: "application/json".into()
        }
    );
}

#[test]
fn value_over_key_vaults_25_kb_limit_is_refused() {
    let big = "A".repeat(material::MAX_VALUE_BYTES + 1);
    assert!(matches!(
        material::convert(&big, PFX, NOW).unwrap_err(),
        MaterialError::TooLarge { size, limit: 25_600 } if size == 25_601
    ));
}

#[test]
fn empty_value_is_refused() {
    assert_eq!(
        material::convert(" \n", PEM, NOW).unwrap_err(),
        MaterialError::Empty
    );
}

#[test]
fn bad_base64_pfx_is_refused() {
    assert!(matches!(
        material::convert("MIIK*not-base64*", PFX, NOW).unwrap_err(),
        MaterialError::BadBase64 { .. }
    ));
}

#[test]
fn bad_base64_inside_a_pem_block_is_refused() {
    let value = "-----BEGIN CERTIFICATE-----\nMIIB$$$$\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        material::convert(value, PEM, NOW).unwrap_err(),
        MaterialError::BadBase64 { .. }
    ));
}

#[test]
fn base64_that_is_not_a_pfx_is_refused_as_malformed() {
    // Valid base64 of a DER INTEGER, not a PFX.
    assert!(matches!(
        material::convert("AgEB", PFX, NOW).unwrap_err(),
        MaterialError::MalformedPkcs12 { .. }
    ));
}

#[test]
fn text_without_pem_blocks_is_refused() {
    assert_eq!(
        material::convert("MIIKdAIBAzCCCj4GCSqGSIb3DQEHAa", PEM, NOW).unwrap_err(),
        MaterialError::NotPem
    );
}

#[test]
fn key_without_certificate_is_refused() {
    let c = chain(1, "nocert");
    assert_eq!(
        material::convert(&c[0].key_pem, PEM, NOW).unwrap_err(),
        MaterialError::NoCertificate
    );
}

#[test]
fn certificate_without_key_is_refused() {
    let c = chain(2, "nokey");
    assert_eq!(
        material::convert(&(c[0].cert_pem.clone() + &c[1].cert_pem), PEM, NOW).unwrap_err(),
        MaterialError::NoPrivateKey
    );
}

#[test]
fn truncated_certificate_is_refused_as_truncated() {
    let c = chain(1, "trunc");
    let der = pem::parse(&c[0].cert_pem).unwrap().into_contents();
    let cut = pem::encode(&pem::Pem::new("CERTIFICATE", &der[..der.len() - 20]));
    assert_eq!(
        material::convert(&(c[0].key_pem.clone() + &cut), PEM, NOW).unwrap_err(),
        MaterialError::TruncatedDer {
            what: "certificate #1".into()
        }
    );
}

#[test]
fn truncated_key_is_refused_as_truncated() {
    let c = chain(1, "trunckey");
    let der = pem::parse(&c[0].key_pem).unwrap().into_contents();
    let cut = pem::encode(&pem::Pem::new("PRIVATE KEY", &der[..der.len() - 5]));
    assert_eq!(
        material::convert(&(cut + &c[0].cert_pem), PEM, NOW).unwrap_err(),
        MaterialError::TruncatedDer {
            what: "private key #1".into()
        }
    );
}

#[test]
fn encrypted_pem_key_is_refused() {
    let c = chain(1, "enc");
    let value = c[0].cert_pem.clone()
        + "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(
        material::convert(&value, PEM, NOW).unwrap_err(),
        MaterialError::EncryptedPemKey
    );
}

#[test]
fn two_keys_that_each_match_a_certificate_are_refused_as_ambiguous() {
    let a = chain(1, "a");
    let b = chain(1, "b");
    let value = pem_of(&a) + &pem_of(&b);
    assert_eq!(
        material::convert(&value, PEM, NOW).unwrap_err(),
        MaterialError::AmbiguousPrivateKeys { count: 2 }
    );
}

#[test]
fn extra_key_matching_nothing_is_dropped_with_a_warning() {
    let a = chain(2, "extra");
    let stray = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let value = stray.serialize_pem() + &pem_of(&a);
    let m = material::convert(&value, PEM, NOW).unwrap();
    assert_eq!(
        m.warnings,
        vec![MaterialWarning::UnmatchedKeysDropped { count: 1 }]
    );
}

#[test]
fn the_same_key_twice_counts_once() {
    let a = chain(2, "twice");
    let value = a[0].key_pem.clone() + &pem_of(&a);
    let m = material::convert(&value, PEM, NOW).unwrap();
    assert!(m.warnings.is_empty());
}

#[test]
fn chain_deeper_than_ten_is_refused() {
    let c = chain(12, "deep");
    assert_eq!(
        material::convert(&pem_of(&c), PEM, NOW).unwrap_err(),
        MaterialError::ChainTooDeep {
            depth: 12,
            limit: 10
        }
    );
}

#[test]
fn chain_of_ten_is_accepted() {
    let c = chain(10, "ten");
    let m = material::convert(&pem_of(&c), PEM, NOW).unwrap();
    assert_eq!(m.chain.len(), 9);
}

#[test]
fn ed25519_key_is_refused_as_unsupported() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = params("ed", false).self_signed(&key).unwrap();
    let value = key.serialize_pem() + &cert.pem();
    assert!(matches!(
        material::convert(&value, PEM, NOW).unwrap_err(),
        MaterialError::UnsupportedKey { index: 1, .. }
    ));
}

#[test]
fn unknown_pem_blocks_are_ignored_with_a_warning() {
    let c = chain(1, "odd");
    let value = pem_of(&c) + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    let m = material::convert(&value, PEM, NOW).unwrap();
    assert_eq!(
        m.warnings,
        vec![MaterialWarning::IgnoredPemBlock {
            label: "X509 CRL".into()
        }]
    );
}

/// The key's base64 body, as it would leak.
fn key_body(key_pem: &str) -> String {
    key_pem.lines().nth(1).unwrap().to_owned()
}

#[test]
fn debug_output_never_shows_the_private_key() {
    let c = chain(2, "debug");
    let m = material::convert(&pem_of(&c), PEM, NOW).unwrap();
    let der = pem::parse(&c[0].key_pem).unwrap().into_contents();
    let debug = format!("{m:?} {m:#?}");
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains(&key_body(&c[0].key_pem)));
    assert!(!debug.contains(&hex::encode(&der[der.len() - 16..])));
    assert!(!debug.contains(&format!("{:?}", &der[der.len() - 8..])));
}

#[test]
fn refusal_messages_never_carry_the_secret_value() {
    let a = chain(1, "leak-a");
    let b = chain(1, "leak-b");
    let body = key_body(&a[0].key_pem);
    let cases = [
        a[0].key_pem.clone(),                                 // no certificate
        a[0].key_pem.clone() + &b[0].cert_pem,                // key matches nothing
        pem_of(&a) + &pem_of(&b),                             // ambiguous
        a[0].key_pem.replace(&body, &body.replace('A', "$")), // bad base64 in the key block
    ];
    for value in cases {
        let err = material::convert(&value, PEM, NOW).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&body), "{text}");
        assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    }
}

/// Fuzzer find (harness oracle, not the parser): a value made of an error message's own
/// words is plain text without blocks, and is refused as such.
#[test]
fn text_that_looks_like_our_own_message_is_refused_as_not_pem() {
    let value = "the value holds no PEM block (is the content type right? a PFX i";
    assert_eq!(
        material::convert(value, PEM, NOW).unwrap_err(),
        MaterialError::NotPem
    );
}
