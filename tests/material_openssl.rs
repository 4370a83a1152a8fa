//! Fixtures built at test time with the `openssl` command, and our output checked with it:
//! the chain verifies (`openssl verify -untrusted`), the key is the leaf's
//! (`openssl x509 -pubkey` = `openssl pkey -pubout`), and the order is the one computed from
//! the certificates whatever order they came in.
//!
//! Keys are generated once per test binary (one RSA-4096 only: it is slow).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use akv_sync_material::{self as material, Material, MaterialError, MaterialWarning};
use base64::Engine as _;

const PFX: &str = "application/x-pkcs12";
const PEM: &str = "application/x-pem-file";
/// A fixed clock inside the fixtures' validity (they are made valid from "now" for a year).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Leaf key algorithms we must handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
    /// secp521r1: ring has no P-521.
    P521,
    /// secp256k1 (Key Vault's `P-256K`): ring has none either.
    P256K,
}
const ALL_ALGS: [Alg; 7] = [
    Alg::Rsa2048,
    Alg::Rsa3072,
    Alg::Rsa4096,
    Alg::P256,
    Alg::P384,
    Alg::P521,
    Alg::P256K,
];

impl Alg {
    /// openssl's name of an EC algorithm's curve.
    fn curve(self) -> Option<&'static str> {
        match self {
            Alg::P256 => Some("P-256"),
            Alg::P384 => Some("P-384"),
            Alg::P521 => Some("secp521r1"),
            Alg::P256K => Some("secp256k1"),
            Alg::Rsa2048 | Alg::Rsa3072 | Alg::Rsa4096 => None,
        }
    }
}

struct Fixtures {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Fixtures {
    fn key(&self, alg: Alg) -> PathBuf {
        self.dir.path().join(format!("{alg:?}.key"))
    }
    /// CA keys: EC P-256 (fast to make), distinct per level.
    fn ca_key(&self, level: usize) -> PathBuf {
        self.dir.path().join(format!("ca{level}.key"))
    }
    fn scratch(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let d = self.dir.path().join(format!("case{n}"));
        std::fs::create_dir(&d).unwrap();
        d
    }
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let gen_key = |name: &str, args: &[&str]| {
            let path = dir.path().join(name);
            let mut all = vec!["genpkey", "-out", p(&path)];
            all.extend_from_slice(args);
            openssl(&all);
        };
        // Keys in parallel: RSA-4096 dominates the time.
        std::thread::scope(|s| {
            s.spawn(|| gen_key("Rsa4096.key", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"]));
            s.spawn(|| gen_key("Rsa3072.key", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"]));
            gen_key("Rsa2048.key", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
            gen_key("P256.key", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
            gen_key("P384.key", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
            gen_key("P521.key", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp521r1"]);
            gen_key("P256K.key", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"]);
            for level in 0..4 {
                gen_key(
                    &format!("ca{level}.key"),
                    &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                );
            }
        });
        std::fs::write(
            dir.path().join("ca.ext"),
            "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("leaf.ext"),
            "basicConstraints=CA:false\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=DNS:leaf.example\n",
        )
        .unwrap();
        Fixtures {
            dir,
            next: AtomicUsize::new(0),
        }
    })
}

/// A chain made by openssl: `certs[0]` is the leaf, the last is the self-signed root.
struct Chain {
    dir: PathBuf,
    key: PathBuf,
    certs: Vec<PathBuf>,
}

impl Chain {
    fn der(&self, i: usize) -> Vec<u8> {
        openssl(&["x509", "-in", p(&self.certs[i]), "-outform", "DER"])
    }
    fn pem(&self, i: usize) -> String {
        std::fs::read_to_string(&self.certs[i]).unwrap()
    }
    fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).unwrap()
    }
    fn root(&self) -> &Path {
        self.certs.last().unwrap()
    }
}

/// Builds a chain of `depth` certificates (1 = a self-signed leaf) for a leaf of `alg`.
fn chain(alg: Alg, depth: usize) -> Chain {
    let f = fixtures();
    let dir = f.scratch();
    let tag = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let key = f.key(alg);
    let ca_ext = f.dir.path().join("ca.ext");
    let leaf_ext = f.dir.path().join("leaf.ext");
    let mut certs_root_first: Vec<PathBuf> = Vec::new();
    // CAs from the root down: ca{depth-2} is the root, ca0 issues the leaf.
    for level in (0..depth.saturating_sub(1)).rev() {
        let out = dir.join(format!("ca{level}.pem"));
        let subj = format!("/O=akv-sync tests/CN={tag} CA level {level}");
        let ca_key = f.ca_key(level);
        match certs_root_first.last() {
            None => {
                openssl(&[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    p(&ca_key),
                    "-subj",
                    &subj,
                    "-days",
                    "365",
                    "-out",
                    p(&out),
                    "-extensions",
                    "v3_ca",
                ]);
            }
            Some(issuer) => {
                let csr = dir.join(format!("ca{level}.csr"));
                openssl(&[
                    "req",
                    "-new",
                    "-key",
                    p(&ca_key),
                    "-subj",
                    &subj,
                    "-out",
                    p(&csr),
                ]);
                openssl(&[
                    "x509",
                    "-req",
                    "-in",
                    p(&csr),
                    "-CA",
                    p(issuer),
                    "-CAkey",
                    p(&f.ca_key(level + 1)),
                    "-set_serial",
                    &(level + 100).to_string(),
                    "-days",
                    "365",
                    "-extfile",
                    p(&ca_ext),
                    "-out",
                    p(&out),
                ]);
            }
        }
        certs_root_first.push(out);
    }
    let leaf = dir.join("leaf.pem");
    let subj = format!("/CN={tag} leaf {alg:?}");
    match certs_root_first.last() {
        None => {
            openssl(&[
                "req",
                "-x509",
                "-new",
                "-key",
                p(&key),
                "-subj",
                &subj,
                "-days",
                "365",
                "-out",
                p(&leaf),
            ]);
        }
        Some(issuer) => {
            let csr = dir.join("leaf.csr");
            openssl(&[
                "req",
                "-new",
                "-key",
                p(&key),
                "-subj",
                &subj,
                "-out",
                p(&csr),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                p(&csr),
                "-CA",
                p(issuer),
                "-CAkey",
                p(&f.ca_key(0)),
                "-set_serial",
                "7",
                "-days",
                "365",
                "-extfile",
                p(&leaf_ext),
                "-out",
                p(&leaf),
            ]);
        }
    }
    certs_root_first.push(leaf);
    certs_root_first.reverse();
    Chain {
        dir,
        key,
        certs: certs_root_first,
    }
}

/// A PFX (base64) of `chain`, the CA certificates given to openssl in `ca_order`.
fn pfx(chain: &Chain, ca_order: &[usize], password: &str, extra: &[&str]) -> String {
    let n = fixtures().next.fetch_add(1, Ordering::Relaxed);
    let cafile = chain.dir.join(format!("cafile{n}.pem"));
    let out = chain.dir.join(format!("out{n}.p12"));
    let cas: String = ca_order.iter().map(|&i| chain.pem(i)).collect();
    std::fs::write(&cafile, cas).unwrap();
    let pass = format!("pass:{password}");
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        p(&chain.key),
        "-in",
        p(&chain.certs[0]),
        "-passout",
        &pass,
        "-out",
        p(&out),
    ];
    if !ca_order.is_empty() {
        args.extend_from_slice(&["-certfile", p(&cafile)]);
    }
    args.extend_from_slice(extra);
    openssl(&args);
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(&out).unwrap())
}

/// Checks `m` against `chain` with openssl and by order.
fn check(m: &Material, chain: &Chain) {
    assert_eq!(m.leaf, chain.der(0), "the leaf comes first");
    let expected: Vec<Vec<u8>> = (1..chain.certs.len()).map(|i| chain.der(i)).collect();
    assert_eq!(m.chain.len(), expected.len(), "chain length");
    assert!(m.chain == expected, "chain is ordered leaf→root");
    let n = fixtures().next.fetch_add(1, Ordering::Relaxed);
    let dir = &chain.dir;
    let (full, leaf, inter) = (
        dir.join(format!("full{n}.pem")),
        dir.join(format!("leaf{n}.pem")),
        dir.join(format!("inter{n}.pem")),
    );
    std::fs::write(&full, m.full_chain_pem().as_slice()).unwrap();
    std::fs::write(&leaf, m.cert_pem()).unwrap();
    std::fs::write(&inter, m.chain_pem()).unwrap();
    let mut args = vec!["verify", "-no_check_time", "-CAfile", p(chain.root())];
    if !m.chain.is_empty() {
        args.extend_from_slice(&["-untrusted", p(&inter)]);
    }
    args.push(p(&leaf));
    let out = openssl(&args);
    assert!(String::from_utf8_lossy(&out).contains(": OK"));
    // The key in the output is the leaf's (openssl reads the first certificate and key).
    let cert_pub = openssl(&["x509", "-in", p(&full), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", p(&full), "-pubout"]);
    assert_eq!(cert_pub, key_pub, "the output key matches the leaf");
    // The output is exactly: leaf, chain…, key last.
    let text = String::from_utf8(m.full_chain_pem().to_vec()).unwrap();
    assert!(text.ends_with("-----END PRIVATE KEY-----\n"));
    assert_eq!(
        text.matches("-----BEGIN CERTIFICATE-----").count(),
        1 + m.chain.len()
    );
    assert!(!text.contains('\r'));
    assert!(text.lines().all(|l| l.len() <= 64));
}

fn convert_ok(value: &str, ct: &str) -> Material {
    match material::convert(value, ct, now()) {
        Ok(m) => m,
        Err(e) => panic!("refused: {e:?}"),
    }
}

#[test]
fn every_key_algorithm_converts_from_pfx_and_from_pem() {
    for alg in ALL_ALGS {
        let c = chain(alg, 3);
        let m = convert_ok(&pfx(&c, &[1, 2], "", &[]), PFX);
        check(&m, &c);
        assert!(m.warnings.is_empty(), "{alg:?}: {:?}", m.warnings);
        // Key Vault's PEM: key first, then the certificates.
        let pem = c.key_pem() + &c.pem(0) + &c.pem(1) + &c.pem(2);
        check(&convert_ok(&pem, PEM), &c);
    }
}

#[test]
fn pkcs1_and_sec1_keys_come_out_as_pkcs8() {
    for (alg, tool) in [
        (Alg::Rsa2048, "rsa"),
        (Alg::P256, "ec"),
        (Alg::P384, "ec"),
        (Alg::P521, "ec"),
        (Alg::P256K, "ec"),
    ] {
        let c = chain(alg, 2);
        let traditional =
            String::from_utf8(openssl(&["pkey", "-in", p(&c.key), "-traditional"])).unwrap();
        let label = if tool == "rsa" {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert!(
            traditional.contains(&format!("BEGIN {label}")),
            "{traditional}"
        );
        let m = convert_ok(&(c.pem(0) + &c.pem(1) + &traditional), PEM);
        check(&m, &c);
        let key = String::from_utf8(m.key_pem().to_vec()).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
}

#[test]
fn ec_key_with_its_parameters_block_converts() {
    let c = chain(Alg::P256, 1);
    let params = String::from_utf8(openssl(&["ecparam", "-name", "prime256v1"])).unwrap();
    let sec1 = String::from_utf8(openssl(&["pkey", "-in", p(&c.key), "-traditional"])).unwrap();
    let m = convert_ok(&(params + &sec1 + &c.pem(0)), PEM);
    check(&m, &c);
    assert!(m.warnings.is_empty());
}

/// Orders of the CA certificates (indexes 1..depth) to feed in.
fn orders(depth: usize) -> Vec<Vec<usize>> {
    let cas: Vec<usize> = (1..depth).collect();
    let mut reversed = cas.clone();
    reversed.reverse();
    let mut rotated = cas.clone();
    if !rotated.is_empty() {
        rotated.rotate_left(1);
    }
    let mut swapped = cas.clone();
    if swapped.len() >= 3 {
        swapped.swap(0, 2);
    }
    vec![cas, reversed, rotated, swapped]
}

#[test]
fn chains_of_one_to_four_come_out_ordered_whatever_the_input_order() {
    for depth in 1..=4 {
        let c = chain(Alg::P256, depth);
        for order in orders(depth) {
            // PFX: openssl keeps the -certfile order.
            check(&convert_ok(&pfx(&c, &order, "", &[]), PFX), &c);
            // PEM: key last, leaf in the middle of the CA certificates.
            let mut blocks: Vec<String> = order.iter().map(|&i| c.pem(i)).collect();
            blocks.insert(blocks.len() / 2, c.pem(0));
            let pem = blocks.concat() + &c.key_pem();
            check(&convert_ok(&pem, PEM), &c);
        }
    }
}

#[test]
fn merged_pfx_with_the_chain_reversed_comes_out_in_tls_order() {
    // Root first, leaf last, as merged PFX files come back from Key Vault.
    let c = chain(Alg::Rsa2048, 4);
    let pem = c.pem(3) + &c.pem(2) + &c.pem(1) + &c.pem(0);
    let all = c.dir.join("reversed.pem");
    std::fs::write(&all, pem).unwrap();
    let out = c.dir.join("reversed.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        p(&c.key),
        "-in",
        p(&all),
        "-passout",
        "pass:",
        "-out",
        p(&out),
    ]);
    let value = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&out).unwrap());
    check(&convert_ok(&value, PFX), &c);
}

#[test]
fn legacy_and_unencrypted_pfx_variants_convert() {
    let c = chain(Alg::Rsa2048, 3);
    let variants: [&[&str]; 6] = [
        // RC2-40 certificates, 3DES key, SHA-1 MAC: what older tools write.
        &["-legacy"],
        &[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
        &["-certpbe", "PBE-SHA1-RC2-40", "-keypbe", "PBE-SHA1-3DES"],
        // Unencrypted bags, with and without a MAC.
        &["-keypbe", "NONE", "-certpbe", "NONE"],
        &["-keypbe", "NONE", "-certpbe", "NONE", "-nomac"],
        // Default AES without a MAC.
        &["-nomac"],
    ];
    for extra in variants {
        let needs_legacy = extra.iter().any(|a| a.contains("RC2"));
        let mut args = extra.to_vec();
        if needs_legacy {
            args.push("-legacy");
        }
        let value = pfx(&c, &[2, 1], "", &args);
        if needs_legacy || extra == ["-legacy"] {
            // The fixture really is RC2-40 (what the variant is there to cover).
            let file = c.dir.join("legacy-check.p12");
            std::fs::write(
                &file,
                base64::engine::general_purpose::STANDARD
                    .decode(&value)
                    .unwrap(),
            )
            .unwrap();
            let info = Command::new("openssl")
                .args([
                    "pkcs12",
                    "-legacy",
                    "-info",
                    "-noout",
                    "-passin",
                    "pass:",
                    "-in",
                    p(&file),
                ])
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&info.stderr).contains("pbeWithSHA1And40BitRC2-CBC"),
                "{}",
                String::from_utf8_lossy(&info.stderr)
            );
        }
        check(&convert_ok(&value, PFX), &c);
    }
}

#[test]
fn several_bags_and_friendly_names_convert() {
    let c = chain(Alg::P384, 3);
    let value = pfx(
        &c,
        &[2, 1],
        "",
        &[
            "-name",
            "my certificate",
            "-caname",
            "root ca",
            "-caname",
            "intermediate",
        ],
    );
    check(&convert_ok(&value, PFX), &c);
}

#[test]
fn password_protected_pfx_is_refused_with_the_password_message() {
    let c = chain(Alg::P256, 2);
    for extra in [
        &[][..],
        &["-legacy"][..],
        &["-nomac"][..],
        &["-legacy", "-nomac"][..],
    ] {
        let value = pfx(&c, &[1], "s3cret", extra);
        let err = material::convert(&value, PFX, now()).unwrap_err();
        assert_eq!(err, MaterialError::PasswordProtected, "{extra:?}");
        assert!(err.to_string().contains("needs a password"));
    }
}

#[test]
fn key_of_another_certificate_is_refused() {
    let ours = chain(Alg::P256, 2);
    let other = chain(Alg::P384, 1);
    let pem = ours.pem(0) + &ours.pem(1) + &other.key_pem();
    assert_eq!(
        material::convert(&pem, PEM, now()).unwrap_err(),
        MaterialError::KeyMatchesNoCertificate { certificates: 2 }
    );
}

#[test]
fn p521_and_secp256k1_keys_of_another_certificate_are_refused() {
    for alg in [Alg::P521, Alg::P256K] {
        let ours = chain(alg, 2);
        // Another key on the same curve, made by `openssl req -newkey` as users do.
        let dir = fixtures().scratch();
        let (other_key, other_cert) = (dir.join("other.key"), dir.join("other.pem"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{}", alg.curve().unwrap()),
            "-nodes",
            "-keyout",
            p(&other_key),
            "-subj",
            "/CN=other",
            "-days",
            "30",
            "-out",
            p(&other_cert),
        ]);
        let other_key = std::fs::read_to_string(&other_key).unwrap();
        let pem = other_key.clone() + &ours.pem(0) + &ours.pem(1);
        assert_eq!(
            material::convert(&pem, PEM, now()).unwrap_err(),
            MaterialError::KeyMatchesNoCertificate { certificates: 2 },
            "{alg:?} PEM"
        );
        // The same mismatch inside a PFX (openssl refuses to write one: the emulator's
        // Key Vault-style writer does not check).
        let other_pkcs8 = pem::parse(&other_key).unwrap().into_contents();
        let mixed = akv_sync_emulator::generator::Generated {
            certs_der: vec![ours.der(0), ours.der(1)],
            key_pkcs8_der: other_pkcs8.into(),
            not_before: 0,
            not_after: 0,
        };
        let value = base64::engine::general_purpose::STANDARD
            .encode(akv_sync_emulator::generator::to_pkcs12(&mixed).unwrap());
        let err = material::convert(&value, PFX, now()).unwrap_err();
        assert!(
            matches!(err, MaterialError::KeyMatchesNoCertificate { .. }),
            "{alg:?} PFX: {err:?}"
        );
        // With its own certificate the other key converts: the refusal was the mismatch.
        convert_ok(
            &(other_key + &std::fs::read_to_string(&other_cert).unwrap()),
            PEM,
        );
    }
}

#[test]
fn pfx_without_a_key_is_refused() {
    let c = chain(Alg::P256, 2);
    let value = pfx(&c, &[1], "", &["-nokeys"]);
    assert_eq!(
        material::convert(&value, PFX, now()).unwrap_err(),
        MaterialError::NoPrivateKey
    );
}

#[test]
fn certificate_from_another_chain_is_dropped_with_a_warning() {
    let ours = chain(Alg::Rsa2048, 2);
    let stranger = chain(Alg::P256, 2);
    let pem = ours.key_pem() + &stranger.pem(1) + &ours.pem(1) + &ours.pem(0) + &stranger.pem(0);
    let m = convert_ok(&pem, PEM);
    check(&m, &ours);
    let dropped: Vec<&MaterialWarning> = m
        .warnings
        .iter()
        .filter(|w| matches!(w, MaterialWarning::UnrelatedCertificateDropped { .. }))
        .collect();
    assert_eq!(dropped.len(), 2, "{:?}", m.warnings);
}

#[test]
fn crlf_indented_pem_with_blank_lines_converts() {
    let c = chain(Alg::P256, 3);
    let lf = c.key_pem() + "\n\n" + &c.pem(2) + &c.pem(0) + "   \n" + &c.pem(1);
    let messy: String = lf
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i % 3 == 0 {
                format!("  {l}\t\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect();
    check(&convert_ok(&messy, PEM), &c);
}

#[test]
fn expired_and_not_yet_valid_certificates_convert_with_a_warning() {
    let c = chain(Alg::P256, 2);
    let pem = c.key_pem() + &c.pem(0) + &c.pem(1);
    let later = now() + 400 * 86_400;
    let m = material::convert(&pem, PEM, later).unwrap();
    check(&m, &c);
    assert_eq!(
        m.warnings
            .iter()
            .filter(|w| matches!(w, MaterialWarning::Expired { .. }))
            .count(),
        2
    );
    let earlier = now() - 86_400;
    let m = material::convert(&pem, PEM, earlier).unwrap();
    assert!(
        m.warnings
            .iter()
            .all(|w| matches!(w, MaterialWarning::NotYetValid { .. }))
            && m.warnings.len() == 2
    );
}

#[test]
fn thumbprint_is_openssls_sha1_fingerprint() {
    let c = chain(Alg::Rsa2048, 1);
    let m = convert_ok(&(c.pem(0) + &c.key_pem()), PEM);
    let fp = String::from_utf8(openssl(&[
        "x509",
        "-in",
        p(&c.certs[0]),
        "-noout",
        "-fingerprint",
        "-sha1",
    ]))
    .unwrap();
    let fp: String = fp.trim().rsplit('=').next().unwrap().replace(':', "");
    assert_eq!(m.thumbprint_hex(), fp);
}

#[test]
fn truncated_pfx_is_refused_as_truncated() {
    let c = chain(Alg::P256, 1);
    let der = base64::engine::general_purpose::STANDARD
        .decode(pfx(&c, &[], "", &[]))
        .unwrap();
    let cut = base64::engine::general_purpose::STANDARD.encode(&der[..der.len() / 2]);
    assert!(matches!(
        material::convert(&cut, PFX, now()).unwrap_err(),
        MaterialError::TruncatedDer { .. }
    ));
}

fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_akv-sync"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn convert_command_prints_the_full_chain_pem_from_a_file_and_from_stdin() {
    let c = chain(Alg::P256, 3);
    let value = pfx(&c, &[2, 1], "", &[]);
    let expected = convert_ok(&value, PFX).full_chain_pem();
    let file = c.dir.join("value.txt");
    std::fs::write(&file, format!("{value}\n")).unwrap();
    let out = run_cli(
        &["convert", "--content-type", PFX, "--input", p(&file)],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, expected.as_slice());
    let out = run_cli(
        &["convert", "--content-type", PFX, "--input", "-"],
        Some(value.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, expected.as_slice());
}

#[test]
fn convert_command_refuses_with_exit_2_and_nothing_on_stdout() {
    let c = chain(Alg::P256, 1);
    let value = pfx(&c, &[], "s3cret", &[]);
    let out = run_cli(
        &["convert", "--content-type", PFX, "--input", "-"],
        Some(value.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a password"));
    let out = run_cli(
        &["convert", "--content-type", "text/plain", "--input", "-"],
        Some(b"x"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("text/plain"));
}

#[test]
fn pem_with_openssl_bag_attribute_lines_converts() {
    // What `openssl pkcs12 -nodes` prints: "Bag Attributes", subject= and issuer= lines
    // around the blocks.
    let c = chain(Alg::Rsa2048, 3);
    let value = pfx(&c, &[1, 2], "", &[]);
    let file = c.dir.join("bag-attributes.p12");
    std::fs::write(
        &file,
        base64::engine::general_purpose::STANDARD
            .decode(&value)
            .unwrap(),
    )
    .unwrap();
    let text = String::from_utf8(openssl(&[
        "pkcs12",
        "-in",
        p(&file),
        "-nodes",
        "-passin",
        "pass:",
    ]))
    .unwrap();
    assert!(text.contains("Bag Attributes"));
    check(&convert_ok(&text, PEM), &c);
}

#[test]
fn ec_key_stored_without_its_public_point_is_completed_from_the_leaf() {
    for alg in [Alg::P256, Alg::P384, Alg::P521, Alg::P256K] {
        let c = chain(alg, 2);
        let sec1 = String::from_utf8(openssl(&["ec", "-in", p(&c.key), "-no_public"])).unwrap();
        assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
        let sec1_file = c.dir.join("nopub.sec1");
        std::fs::write(&sec1_file, &sec1).unwrap();
        let pkcs8 = String::from_utf8(openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            p(&sec1_file),
        ]))
        .unwrap();
        for key in [sec1, pkcs8] {
            // Other certificates first: a stranger (other curve: the fixtures share one key
            // per algorithm) and the issuer (a P-256 key, so for P-256 a same-curve miss):
            // the scalar must find its own.
            let stranger = chain(
                if alg == Alg::P256 {
                    Alg::P384
                } else {
                    Alg::P256
                },
                1,
            );
            let m = convert_ok(&(stranger.pem(0) + &key + &c.pem(1) + &c.pem(0)), PEM);
            check(&m, &c);
            assert_eq!(
                m.warnings.len(),
                1,
                "only the stranger is reported: {:?}",
                m.warnings
            );
        }
        // A point-less scalar on the same curve that belongs to no certificate is refused.
        let curve = alg.curve().unwrap();
        let other_key = c.dir.join("other.key");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            p(&other_key),
        ]);
        let lone = String::from_utf8(openssl(&["ec", "-in", p(&other_key), "-no_public"])).unwrap();
        assert_eq!(
            material::convert(&(lone + &c.pem(0)), PEM, now()).unwrap_err(),
            MaterialError::KeyMatchesNoCertificate { certificates: 1 }
        );
    }
}

/// `convert --to pfx` gives a PKCS#12 that OpenSSL 3 reads without `-legacy` under the
/// password file's password, holding the leaf's key and the chain leaf first, for every key
/// algorithm; `--to der` gives the leaf.
#[test]
fn convert_to_pfx_and_der_give_what_openssl_reads_for_every_key_algorithm() {
    use std::os::unix::fs::PermissionsExt;
    for alg in ALL_ALGS {
        let c = chain(alg, 3);
        let value = pfx(&c, &[1, 2], "", &[]);
        let pass = c.dir.join("pfx.pass");
        std::fs::write(&pass, "pässword\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = run_cli(
            &[
                "convert",
                "--content-type",
                PFX,
                "--input",
                "-",
                "--to",
                "pfx",
                "--password-file",
                p(&pass),
                "--friendly-name",
                "web",
            ],
            Some(value.as_bytes()),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{alg:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = c.dir.join("out.pfx");
        std::fs::write(&file, &out.stdout).unwrap();
        let passin = format!("file:{}", p(&pass));
        let info = String::from_utf8(openssl(&[
            "pkcs12",
            "-in",
            p(&file),
            "-passin",
            &passin,
            "-info",
            "-nodes",
        ]))
        .unwrap();
        let certs: Vec<Vec<u8>> = pem::parse_many(&info)
            .unwrap()
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect();
        let expected: Vec<Vec<u8>> = (0..3).map(|i| c.der(i)).collect();
        assert_eq!(certs, expected, "{alg:?}: leaf, intermediate, root");
        assert!(info.contains("friendlyName: web"), "{alg:?}: {info}");
        let key = c.dir.join("out-key.pem");
        openssl(&[
            "pkcs12",
            "-in",
            p(&file),
            "-passin",
            &passin,
            "-nocerts",
            "-nodes",
            "-out",
            p(&key),
        ]);
        assert_eq!(
            openssl(&["pkey", "-in", p(&key), "-pubout"]),
            openssl(&["x509", "-in", p(&c.certs[0]), "-noout", "-pubkey"]),
            "{alg:?}: the key is the leaf's"
        );

        let out = run_cli(
            &[
                "convert",
                "--content-type",
                PFX,
                "--input",
                "-",
                "--to",
                "der",
            ],
            Some(value.as_bytes()),
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, c.der(0), "{alg:?}: the leaf as DER");
    }
}

#[test]
fn convert_refuses_a_group_writable_password_file_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let c = chain(Alg::P256, 1);
    let value = pfx(&c, &[], "", &[]);
    let pass = c.dir.join("open.pass");
    std::fs::write(&pass, "pw").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o660)).unwrap();
    let out = run_cli(
        &[
            "convert",
            "--content-type",
            PFX,
            "--input",
            "-",
            "--to",
            "pfx",
            "--password-file",
            p(&pass),
        ],
        Some(value.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains(p(&pass)));
}
