//! Conversions per second: a 3-certificate RSA-2048 chain (root, intermediate, leaf) as a
//! PFX (OpenSSL 3 default AES-256/PBKDF2, and Key Vault's 3DES/SHA-1) and as PEM.
//! Fixtures are made once with the `openssl` command.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Fixture {
    pfx_aes: String,
    pfx_3des: String,
    pem: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ca.ext"),
        "basicConstraints=critical,CA:true\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    for k in ["root", "int", "leaf"] {
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &format!("{k}.key"),
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/CN=bench root",
            "-days",
            "30",
            "-out",
            "root.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=bench int",
            "-out",
            "int.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "2",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
            "-out",
            "int.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=bench leaf",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-set_serial",
            "3",
            "-days",
            "30",
            "-out",
            "leaf.pem",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    std::fs::write(d.join("cas.pem"), read("root.pem") + &read("int.pem")).unwrap();
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-certfile",
            "cas.pem",
            "-passout",
            "pass:",
            "-out",
            "aes.p12",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-certfile",
            "cas.pem",
            "-passout",
            "pass:",
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
            "-out",
            "3des.p12",
        ],
    );
    let b64 = |f: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join(f)).unwrap())
    };
    Fixture {
        pfx_aes: b64("aes.p12"),
        pfx_3des: b64("3des.p12"),
        // Key Vault's PEM order: key first, then the certificates (reversed here, to be sorted).
        pem: read("leaf.key") + &read("root.pem") + &read("int.pem") + &read("leaf.pem"),
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let now = 1_800_000_000;
    let mut g = c.benchmark_group("convert_rsa2048_chain3");
    g.throughput(Throughput::Elements(1));
    for (name, value, ct) in [
        ("pfx_aes256", &f.pfx_aes, "application/x-pkcs12"),
        ("pfx_3des", &f.pfx_3des, "application/x-pkcs12"),
        ("pem", &f.pem, "application/x-pem-file"),
    ] {
        akv_sync_material::convert(value, ct, now).expect("fixture converts");
        g.bench_function(name, |b| {
            b.iter(|| akv_sync_material::convert(std::hint::black_box(value), ct, now).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
