//! The shipped unit file and handler manifest.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_akv-sync");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(root().join("packaging/akv-sync.service")).unwrap();
    assert!(
        unit.contains("Type=notify"),
        "readiness must be sd_notify based"
    );
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("akv-sync.service");
    std::fs::write(&path, unit.replace("/usr/bin/akv-sync", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) is installed by scripts/install-deps");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_handler_manifest_names_commands_the_binary_has() {
    let text = std::fs::read_to_string(root().join("packaging/HandlerManifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let m = &v[0]["handlerManifest"];
    for key in [
        "installCommand",
        "enableCommand",
        "disableCommand",
        "uninstallCommand",
        "updateCommand",
    ] {
        let cmd = m[key].as_str().unwrap();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "bin/akv-sync", "{key}");
        let help = Command::new(BIN)
            .args(&words[1..])
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{key}: `{cmd} --help` failed");
    }
}

#[test]
fn the_unit_raises_the_descriptor_limit() {
    let unit = std::fs::read_to_string(root().join("packaging/akv-sync.service")).unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in the unit")
        .parse()
        .unwrap();
    assert!(limit >= 65536, "{limit}");
}
