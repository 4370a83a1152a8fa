//! The `pfx` and `certDer` outputs (issue 18), read by the tools their consumers use:
//! OpenSSL 3 without `-legacy`, Java's `keytool`, and a service user granted by `acls`.
//! .NET is not in the Debian archive (Microsoft's own repository would be needed), so it is
//! not among the readers here.

mod daemon_support;
mod store_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use akv_sync_emulator::generator::{CertSpec, KeyKind};
use daemon_support::*;
use serde_json::json;
use store_support::{TestUser, assert_root, getfacl};

fn spec(key: KeyKind, chain_len: u8) -> CertSpec {
    CertSpec {
        key,
        chain_len,
        ..Default::default()
    }
}

/// A password file as the README asks for: root-owned, 0600, password + newline.
fn password_file(env: &Env, name: &str, password: &str) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn settings(env: &Env, certs: serde_json::Value, acl: bool) -> PathBuf {
    let path = env.path("s.json");
    let s = json!({ "secretsManagementSettings": {
        "pollingIntervalInS": "1",
        "requireInitialSync": true,
        "aclEnabled": acl,
        "observedCertificates": certs,
    }});
    std::fs::write(&path, s.to_string()).unwrap();
    path
}

fn observed(
    env: &Env,
    name: &str,
    outputs: serde_json::Value,
    acls: serde_json::Value,
) -> serde_json::Value {
    json!({
        "url": format!("https://alpha.vault.azure.net/secrets/{name}"),
        "certificateStoreLocation": env.store.display().to_string(),
        "acls": acls,
        "akvSync": { "outputs": outputs },
    })
}

fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn openssl(args: &[&str]) -> String {
    let (ok, text) = tool("openssl", args);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The certificates of a PEM text, in order, as DER.
fn certs_in(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect()
}

/// The public key (PEM) of the first certificate in `path`.
fn leaf_public_key(path: &Path) -> String {
    openssl(&["x509", "-in", s(path), "-pubkey", "-noout"])
}

/// What OpenSSL 3 (default provider only) finds in the PFX: the certificates (leaf first, as
/// written) and whether the key it holds is the leaf's.
fn openssl_reads(pfx: &Path, passin: &str, leaf_pem: &Path) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let info = openssl(&[
        "pkcs12",
        "-in",
        s(pfx),
        "-passin",
        passin,
        "-info",
        "-noout",
    ]);
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(
        info.matches("PBES2, PBKDF2, AES-256-CBC").count() >= 2,
        "certificates and key both under PBES2/AES-256: {info}"
    );
    assert!(info.contains("PRF hmacWithSHA256"), "{info}");
    let certs = openssl(&["pkcs12", "-in", s(pfx), "-passin", passin, "-nokeys"]);
    let key_file = dir.path().join("key.pem");
    openssl(&[
        "pkcs12",
        "-in",
        s(pfx),
        "-passin",
        passin,
        "-nocerts",
        "-nodes",
        "-out",
        s(&key_file),
    ]);
    let key_pub = openssl(&["pkey", "-in", s(&key_file), "-pubout"]);
    assert_eq!(
        key_pub,
        leaf_public_key(leaf_pem),
        "the PFX's key is the leaf's"
    );
    certs_in(&certs)
}

#[test]
fn openssl_and_keytool_find_the_key_the_leaf_and_the_chain_in_the_pfx() {
    assert_root();
    let env = Env::start();
    let control = env.emulator.control();
    let v_rsa = control
        .create_certificate("alpha", "web", spec(KeyKind::Rsa2048, 3))
        .unwrap();
    let v_ec = control
        .create_certificate("alpha", "api", spec(KeyKind::EcP256, 2))
        .unwrap();
    let pass = password_file(&env, "web.pass", "correct horse");
    let settings = settings(
        &env,
        json!([
            observed(
                &env,
                "web",
                json!({"pfx": "web.pfx", "pfxPasswordFile": s(&pass),
                "pfxFriendlyName": "tomcat", "certDer": "web.der"}),
                json!([])
            ),
            observed(&env, "api", json!({"pfx": "api.pfx"}), json!([])),
        ]),
        false,
    );
    let out = env
        .command(&["once", "--settings", s(&settings), "--attempts", "1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    for (name, version, passin, chain_len) in [
        ("web", &v_rsa, format!("file:{}", s(&pass)), 3),
        ("api", &v_ec, "pass:".to_owned(), 2),
    ] {
        let version_file = env.store.join(format!("alpha.{name}.{version}"));
        let pfx = env.store.join(format!("{name}.pfx"));
        let meta = std::fs::metadata(&pfx).unwrap();
        assert_eq!(
            meta.mode() & 0o777,
            0o600,
            "the PFX holds the key: key mode"
        );
        let expected = certs_in(&std::fs::read_to_string(&version_file).unwrap());
        assert_eq!(expected.len(), chain_len);
        assert_eq!(
            openssl_reads(&pfx, &passin, &version_file),
            expected,
            "{name}"
        );
    }

    // keytool: one key entry under the friendly name, with the leaf and its two issuers;
    // a CSR it signs with that key carries the leaf's public key.
    let pfx = env.store.join("web.pfx");
    let store_args = [
        "-keystore",
        s(&pfx),
        "-storetype",
        "PKCS12",
        "-storepass",
        "correct horse",
    ];
    let (ok, list) = tool("keytool", &[&["-list", "-v"][..], &store_args].concat());
    assert!(ok, "{list}");
    assert!(list.contains("Your keystore contains 1 entry"), "{list}");
    assert!(list.contains("Alias name: tomcat"), "{list}");
    assert!(list.contains("Entry type: PrivateKeyEntry"), "{list}");
    assert!(list.contains("Certificate chain length: 3"), "{list}");
    let version_file = env.store.join(format!("alpha.web.{v_rsa}"));
    let leaf_sha256 = openssl(&[
        "x509",
        "-in",
        s(&version_file),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let leaf_sha256 = leaf_sha256.trim().rsplit('=').next().unwrap();
    let first = list.split("Certificate[2]").next().unwrap();
    assert!(
        first.contains(&format!("SHA256: {leaf_sha256}")),
        "leaf first: {list}"
    );
    let csr = env.path("web.csr");
    let (ok, text) = tool(
        "keytool",
        &[
            &["-certreq", "-alias", "tomcat", "-file", s(&csr)][..],
            &store_args,
        ]
        .concat(),
    );
    assert!(ok, "{text}");
    openssl(&["req", "-in", s(&csr), "-verify", "-noout"]);
    assert_eq!(
        openssl(&["req", "-in", s(&csr), "-pubkey", "-noout"]),
        leaf_public_key(&version_file),
        "the key Java found is the leaf's"
    );

    // certDer: the leaf alone, DER, public mode.
    let der = env.store.join("web.der");
    assert_eq!(
        std::fs::read(&der).unwrap(),
        certs_in(&std::fs::read_to_string(&version_file).unwrap())[0]
    );
    assert_eq!(std::fs::metadata(&der).unwrap().mode() & 0o777, 0o644);

    // A second pass writes nothing: same version, same password, same bytes.
    let before = std::fs::metadata(&pfx).unwrap();
    let out = env
        .command(&["once", "--settings", s(&settings), "--attempts", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let after = std::fs::metadata(&pfx).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
}

/// The leaf certificate inside a PFX, read in-process (any partial file fails to parse).
fn pfx_leaf(bytes: &[u8], password: &str) -> Option<Vec<u8>> {
    let store = p12_keystore::KeyStore::from_pkcs12(bytes, password, Default::default()).ok()?;
    let (_, chain) = store.private_key_chain()?;
    Some(chain.certs()[0].as_der().to_vec())
}

#[test]
fn a_rotation_replaces_the_pfx_atomically_and_a_granted_reader_reads_each_one() {
    assert_root();
    let env = Env::start();
    // tempfile makes 0700 folders: let other users reach the store (which stays 0700 + ACL).
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = TestUser::new(&[]);
    let other = TestUser::new(&[]);
    let control = env.emulator.control();
    let v1 = control
        .create_certificate("alpha", "web", spec(KeyKind::EcP256, 2))
        .unwrap();
    let pass = password_file(&env, "web.pass", "pw1");
    let settings = settings(
        &env,
        json!([observed(
            &env,
            "web",
            json!({"pfx": "web.pfx", "pfxPasswordFile": s(&pass)}),
            json!([{ "user": user.name }])
        )]),
        true,
    );
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    let pfx = env.store.join("web.pfx");

    // A reader polling the PFX all along: every read is a whole PFX of some version.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, pfx) = (stop.clone(), pfx.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let bytes = std::fs::read(&pfx).expect("the PFX is always there");
                assert!(
                    pfx_leaf(&bytes, "pw1").is_some(),
                    "a partial or foreign PFX was seen"
                );
                reads += 1;
            }
            reads
        })
    };

    let mut version = v1;
    for _ in 0..2 {
        let before = std::fs::metadata(&pfx).unwrap().ino();
        let v = control.rotate("alpha", "web").unwrap();
        d.wait_line("the rotation", |l| {
            l["message"] == "installed new version" && l["version"] == v
        });
        let version_file = env.store.join(format!("alpha.web.{v}"));
        let leaf = certs_in(&std::fs::read_to_string(&version_file).unwrap()).remove(0);
        assert_ne!(
            std::fs::metadata(&pfx).unwrap().ino(),
            before,
            "replaced by rename"
        );
        let read = user.cat(&pfx).expect("the granted user reads the PFX");
        assert_eq!(
            pfx_leaf(&read, "pw1"),
            Some(leaf),
            "and it holds version {v}"
        );
        assert_eq!(other.cat(&pfx), None, "nobody else does");
        version = v;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let acl = getfacl(&pfx);
    assert!(acl.contains(&format!("user:{}:r--", user.uid())), "{acl}");
    assert!(acl.contains("other::---"), "{acl}");
    assert_eq!(installed(&env.store, "alpha", "web"), Some(version));
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn a_changed_password_file_rewrites_the_pfx_without_a_new_version() {
    assert_root();
    let env = Env::start();
    let control = env.emulator.control();
    let v1 = control
        .create_certificate("alpha", "web", spec(KeyKind::EcP256, 1))
        .unwrap();
    let pass = password_file(&env, "web.pass", "old password");
    let settings = settings(
        &env,
        json!([observed(
            &env,
            "web",
            json!({"pfx": "web.pfx", "pfxPasswordFile": s(&pass)}),
            json!([])
        )]),
        false,
    );
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    let pfx = env.store.join("web.pfx");
    assert!(pfx_leaf(&std::fs::read(&pfx).unwrap(), "old password").is_some());

    // Replaced the way an administrator would: a new file renamed over the old one.
    let next = password_file(&env, "web.pass.new", "new password");
    std::fs::rename(&next, &pass).unwrap();
    d.wait_line("the rewrite", |l| {
        l["message"] == "repaired permissions or links" && l["certificate"] == "alpha/web"
    });
    let bytes = std::fs::read(&pfx).unwrap();
    assert!(
        pfx_leaf(&bytes, "new password").is_some(),
        "now under the new password"
    );
    assert!(pfx_leaf(&bytes, "old password").is_none());
    assert_eq!(
        installed(&env.store, "alpha", "web"),
        Some(v1),
        "same version"
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn a_group_writable_password_file_fails_that_certificate_alone_and_writes_nothing_of_it() {
    assert_root();
    let env = Env::start();
    let control = env.emulator.control();
    control
        .create_certificate("alpha", "web", spec(KeyKind::EcP256, 1))
        .unwrap();
    control
        .create_certificate("alpha", "api", spec(KeyKind::EcP256, 1))
        .unwrap();
    let pass = password_file(&env, "web.pass", "pw");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o620)).unwrap();
    let settings = settings(
        &env,
        json!([
            observed(
                &env,
                "web",
                json!({"pfx": "web.pfx", "pfxPasswordFile": s(&pass)}),
                json!([])
            ),
            observed(&env, "api", json!({"pfx": "api.pfx"}), json!([])),
        ]),
        false,
    );
    let out = env
        .command(&["once", "--settings", s(&settings), "--attempts", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed = stdout
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("alpha/web"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        failed.contains(&format!("pfxPasswordFile {}", s(&pass))),
        "names the file: {failed}"
    );
    assert!(failed.contains("0620"), "and says why: {failed}");
    assert!(!failed.contains("pw\n"));
    assert_eq!(
        installed(&env.store, "alpha", "web"),
        None,
        "nothing of web written"
    );
    assert!(!env.store.join("web.pfx").exists());
    assert!(
        env.store.join("api.pfx").exists(),
        "the other certificate synced"
    );
}
