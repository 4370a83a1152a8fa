//! Every key type Key Vault issues, from the emulator to disk: P-521 and secp256k1 (`P-256K`)
//! leaves and issuers verify with openssl, and the agent installs them, as PEM and as PFX.

mod daemon_support;

use std::process::{Command, Stdio};

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind, generate, to_pem};
use daemon_support::{Env, installed};
use serde_json::json;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn p521_and_secp256k1_chains_verify_with_openssl_as_leaves_and_as_issuers() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (key, issuer_key, curve)) in [
        (KeyKind::EcP521, KeyKind::EcP521, "secp521r1"),
        (KeyKind::EcP256K, KeyKind::EcP256K, "secp256k1"),
        (KeyKind::EcP256, KeyKind::EcP521, "prime256v1"),
        (KeyKind::EcP384, KeyKind::EcP256K, "secp384r1"),
    ]
    .into_iter()
    .enumerate()
    {
        let g = generate(&CertSpec {
            key,
            issuer_key,
            chain_len: 3,
            subject_cn: "leaf.example".into(),
            ..CertSpec::default()
        })
        .unwrap();
        let pem_of = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        let path = |name: &str| dir.path().join(format!("{i}-{name}.pem"));
        std::fs::write(path("leaf"), pem_of(&g.certs_der[0])).unwrap();
        std::fs::write(path("inter"), pem_of(&g.certs_der[1])).unwrap();
        std::fs::write(path("root"), pem_of(&g.certs_der[2])).unwrap();
        std::fs::write(path("all"), to_pem(&g).as_bytes()).unwrap();
        let s = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            &s(&path("root")),
            "-untrusted",
            &s(&path("inter")),
            &s(&path("leaf")),
        ]);
        assert!(
            ok && out.contains(": OK"),
            "{key:?} by {issuer_key:?}: {out}"
        );
        // The leaf's key is on the named curve and is the one served with it.
        let (_, text) = openssl(&["x509", "-in", &s(&path("leaf")), "-noout", "-text"]);
        assert!(text.contains(curve), "{key:?}: {text}");
        let (_, cert_pub) = openssl(&["x509", "-in", &s(&path("all")), "-noout", "-pubkey"]);
        let (_, key_pub) = openssl(&["pkey", "-in", &s(&path("all")), "-pubout"]);
        assert_eq!(cert_pub, key_pub, "{key:?}");
    }
}

#[test]
fn key_kind_names_follow_key_vaults_curve_names() {
    assert_eq!("ecP521".parse(), Ok(KeyKind::EcP521));
    assert_eq!("ecP256K".parse(), Ok(KeyKind::EcP256K));
    assert_eq!(
        serde_json::to_value(KeyKind::EcP256K).unwrap(),
        json!("ecP256K")
    );
    assert_eq!(
        serde_json::from_value::<KeyKind>(json!("ecP521")).unwrap(),
        KeyKind::EcP521
    );
}

#[test]
fn agent_installs_p521_and_secp256k1_certificates_as_pem_and_pfx() {
    let env = Env::start();
    let control = env.emulator.control();
    let mut certs = Vec::new();
    for (name, key, issuer_key, format) in [
        ("p521-pem", KeyKind::EcP521, KeyKind::EcP521, Format::Pem),
        (
            "p521-pfx",
            KeyKind::EcP521,
            KeyKind::EcP256K,
            Format::Pkcs12,
        ),
        ("k256-pem", KeyKind::EcP256K, KeyKind::EcP256K, Format::Pem),
        (
            "k256-pfx",
            KeyKind::EcP256K,
            KeyKind::EcP521,
            Format::Pkcs12,
        ),
    ] {
        let version = control
            .create_certificate(
                "keys",
                name,
                CertSpec {
                    key,
                    issuer_key,
                    chain_len: 2,
                    format,
                    ..CertSpec::default()
                },
            )
            .unwrap();
        certs.push((name, version));
    }
    let names: Vec<(&str, &str)> = certs.iter().map(|(n, _)| ("keys", *n)).collect();
    let settings = env.write_settings("s.json", &names, json!({}), json!({}));
    let out = env
        .command(&[
            "once",
            "--settings",
            settings.to_str().unwrap(),
            "--attempts",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, version) in &certs {
        assert_eq!(
            installed(&env.store, "keys", name).as_ref(),
            Some(version),
            "{name}"
        );
        // The installed file's key is its leaf's.
        let file = env.store.join(format!("keys.{name}"));
        let file = file.to_str().unwrap();
        let (_, cert_pub) = openssl(&["x509", "-in", file, "-noout", "-pubkey"]);
        let (ok, key_pub) = openssl(&["pkey", "-in", file, "-pubout"]);
        assert!(ok, "{name}: {key_pub}");
        assert_eq!(cert_pub, key_pub, "{name}");
    }
}
