//! The two secrets recorded from the real Key Vault service convert, with the thumbprints
//! the recordings' README gives (read at test time from `../shared/conformance/recorded/`
//! relative to the workspace root, or the nearest `shared/` above it).

use std::path::PathBuf;

use akv_sync_material::{self as material, MaterialWarning};

fn recorded(name: &str) -> (String, String) {
    // `shared/` sits beside the clone (CI, /work/main); from a nested worktree it is higher up.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/conformance/recorded").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no shared/conformance/recorded/{name} beside or above {}",
                manifest.display()
            )
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("recording is JSON");
    let body = &json["Entries"][8]["ResponseBody"];
    (
        body["value"].as_str().expect("value").to_owned(),
        body["contentType"]
            .as_str()
            .expect("contentType")
            .to_owned(),
    )
}

/// 2025-01-01: after both certificates expired.
const NOW: i64 = 1_735_689_600;

#[test]
fn recorded_pkcs12_secret_converts_with_azures_thumbprint() {
    let (value, content_type) = recorded("pkcs12-secret.recording.json");
    assert_eq!(content_type, "application/x-pkcs12");
    let m = material::convert(&value, &content_type, NOW).expect("converts");
    assert_eq!(
        m.thumbprint_hex(),
        "430CB3D0ECCC21A3E991A6B02A877D858F32C5D7"
    );
    assert_eq!(m.subject, "CN=MyCert");
    assert!(m.chain.is_empty());
    assert_eq!((m.not_before, m.not_after), (1668448060, 1699984660));
    assert!(matches!(
        m.warnings.as_slice(),
        [MaterialWarning::Expired { .. }]
    ));
}

#[test]
fn recorded_pem_secret_converts_with_azures_thumbprints() {
    let (value, content_type) = recorded("pem-secret.recording.json");
    assert_eq!(content_type, "application/x-pem-file");
    let m = material::convert(&value, &content_type, NOW).expect("converts");
    assert_eq!(
        m.thumbprint_hex(),
        "B473943AA82DF8608AEB5512D2A9643EBF23D7EC"
    );
    assert_eq!(
        hex::encode_upper(m.sha256),
        "6B5608B934AD64859B82523950599B6C0E2994585402C8D265492075CA8F6B06"
    );
    assert_eq!((m.not_before, m.not_after), (1658442315, 1689978915));
    assert!(matches!(
        m.warnings.as_slice(),
        [MaterialWarning::Expired { .. }]
    ));
}

#[test]
fn recorded_secrets_are_valid_inside_their_validity_window() {
    let (value, content_type) = recorded("pkcs12-secret.recording.json");
    let m = material::convert(&value, &content_type, 1_680_000_000).expect("converts");
    assert!(m.warnings.is_empty());
}
