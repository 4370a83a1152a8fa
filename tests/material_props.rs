//! Property: whatever order the certificates of a chain come in, with strangers, duplicates
//! and the key anywhere, the output is the leaf then each issuer in turn, and every stranger
//! is reported dropped.
//!
//! The certificates are made once (rcgen, EC P-256) and picked/shuffled in the property.

use std::sync::OnceLock;

use akv_sync_material::{self as material, MaterialWarning};
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};

struct Pool {
    /// Leaf first, root last (5 certificates).
    chain_pem: Vec<String>,
    chain_der: Vec<Vec<u8>>,
    leaf_key_pem: String,
    /// Certificates on no path from the leaf: another root, its child, and an impostor with
    /// the same subject name as `chain[2]` but another key (only key identifiers tell it apart).
    strangers_pem: Vec<String>,
    stray_key_pem: String,
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

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let names = ["root", "int 1", "int 2", "int 3"];
        let root_key = key();
        let root_params = params(names[0], true);
        let root = root_params.self_signed(&root_key).unwrap();
        let mut certs = vec![root];
        let mut issuer = Issuer::new(root_params, root_key);
        for name in &names[1..] {
            let k = key();
            let p = params(name, true);
            certs.push(p.signed_by(&k, &issuer).unwrap());
            issuer = Issuer::new(p, k);
        }
        let leaf_key = key();
        certs.push(params("leaf", false).signed_by(&leaf_key, &issuer).unwrap());
        certs.reverse();

        let other_key = key();
        let other_params = params("other root", true);
        let other_root = other_params.self_signed(&other_key).unwrap();
        let other_issuer = Issuer::new(other_params, other_key);
        let other_child = params("other child", false)
            .signed_by(&key(), &other_issuer)
            .unwrap();
        // Same subject as chain[2] ("int 2"), issued under the other root.
        let impostor = params(names[2], true)
            .signed_by(&key(), &other_issuer)
            .unwrap();
        Pool {
            chain_pem: certs.iter().map(|c| c.pem()).collect(),
            chain_der: certs.iter().map(|c| c.der().to_vec()).collect(),
            leaf_key_pem: leaf_key.serialize_pem(),
            strangers_pem: vec![other_root.pem(), other_child.pem(), impostor.pem()],
            stray_key_pem: key().serialize_pem(),
        }
    })
}

/// One input: how much of the chain, which strangers, duplicates, and an order.
#[derive(Debug, Clone)]
struct Case {
    /// Certificates of the chain present: the leaf and its first `ancestors` issuers.
    ancestors: usize,
    strangers: Vec<bool>,
    duplicate: Option<usize>,
    stray_key: bool,
    /// A permutation seed for the blocks (key included).
    order: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0usize..5,
        proptest::collection::vec(any::<bool>(), 3),
        proptest::option::of(0usize..5),
        any::<bool>(),
    )
        .prop_flat_map(|(ancestors, strangers, duplicate, stray_key)| {
            let blocks = 1 // leaf
                + ancestors
                + strangers.iter().filter(|s| **s).count()
                + usize::from(duplicate.is_some_and(|d| d <= ancestors))
                + 1 // key
                + usize::from(stray_key);
            (
                Just(ancestors),
                Just(strangers),
                Just(duplicate),
                Just(stray_key),
                Just((0..blocks).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
        .prop_map(|(ancestors, strangers, duplicate, stray_key, order)| Case {
            ancestors,
            strangers,
            duplicate,
            stray_key,
            order,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_a_chain_comes_out_leaf_first_then_each_issuer(c in case()) {
        let p = pool();
        let mut blocks: Vec<&str> = Vec::new();
        for i in 0..=c.ancestors {
            blocks.push(&p.chain_pem[i]);
        }
        let strangers = c.strangers.iter().filter(|s| **s).count();
        for (s, on) in p.strangers_pem.iter().zip(&c.strangers) {
            if *on {
                blocks.push(s);
            }
        }
        if let Some(d) = c.duplicate.filter(|d| *d <= c.ancestors) {
            blocks.push(&p.chain_pem[d]);
        }
        blocks.push(&p.leaf_key_pem);
        if c.stray_key {
            blocks.push(&p.stray_key_pem);
        }
        let value: String = c.order.iter().map(|&i| blocks[i]).collect();

        let m = material::convert(&value, "application/x-pem-file", 1_800_000_000).unwrap();
        prop_assert_eq!(&m.leaf, &p.chain_der[0]);
        prop_assert_eq!(&m.chain, &p.chain_der[1..=c.ancestors].to_vec());
        let dropped = m
            .warnings
            .iter()
            .filter(|w| matches!(w, MaterialWarning::UnrelatedCertificateDropped { .. }))
            .count();
        prop_assert_eq!(dropped, strangers);
        let unmatched = m
            .warnings
            .iter()
            .any(|w| matches!(w, MaterialWarning::UnmatchedKeysDropped { count: 1 }));
        prop_assert_eq!(unmatched, c.stray_key);
        // Nothing but the leaf and its issuers, in that order, then the key.
        let full = String::from_utf8(m.full_chain_pem().to_vec()).unwrap();
        prop_assert!(full.ends_with("-----END PRIVATE KEY-----\n"));
        prop_assert_eq!(full.matches("BEGIN CERTIFICATE").count(), 1 + c.ancestors);
    }
}
