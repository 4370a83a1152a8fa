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

#[test]
fn the_handler_manifest_declares_the_service_as_walinuxagent_reads_it() {
    // WALinuxAgent's HandlerManifest.get_resource_limits(): `resourceLimits` beside
    // `handlerManifest`, `services` a list of `{ "name": <unit> }`.
    let text = std::fs::read_to_string(root().join("packaging/HandlerManifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let services = v[0]["resourceLimits"]["services"].as_array().unwrap();
    assert!(
        services
            .iter()
            .any(|s| s["name"] == "akvvm_service.service"),
        "{services:?}"
    );
}

fn verify(unit_dir: &Path, unit: &str) {
    // The unit path lookup finds the drop-ins in `<dir>/<unit>.d/` (and reports them, too).
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit_dir.join(unit))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", unit_dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {unit}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A handler folder whose settings put stores in `stores` (one with a blank in its name).
fn handler_folder(dir: &Path, stores: &[&Path]) {
    for d in ["config", "status", "logs"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let he = serde_json::json!([{ "handlerEnvironment": {
        "logFolder": dir.join("logs"), "configFolder": dir.join("config"), "statusFolder": dir.join("status")
    } }]);
    std::fs::write(dir.join("HandlerEnvironment.json"), he.to_string()).unwrap();
    let observed: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({ "url": format!("https://alpha.vault.azure.net/secrets/c{i}"), "certificateStoreLocation": s }))
        .collect();
    let settings = serde_json::json!({ "runtimeSettings": [ { "handlerSettings": { "publicSettings": {
        "secretsManagementSettings": { "pollingIntervalInS": "3600", "observedCertificates": observed }
    } } } ] });
    std::fs::write(dir.join("config/4.settings"), settings.to_string()).unwrap();
}

#[test]
fn the_handler_unit_and_the_generated_stores_drop_in_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ext = dir.path().join("ext");
    let units = dir.path().join("units");
    let a = dir.path().join("etc/ssl/akv");
    let b = dir.path().join("srv/my certs");
    handler_folder(&ext, &[&a, &b]);
    let out = Command::new(BIN)
        .args(["handler", "--handler-dir"])
        .arg(&ext)
        .args(["sandbox", "--unit-dir"])
        .arg(&units)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drop_in =
        std::fs::read_to_string(units.join("akvvm_service.service.d/50-akv-sync-stores.conf"))
            .unwrap();
    assert!(
        drop_in.contains(&format!("ReadWritePaths=-{}\n", a.display())),
        "{drop_in}"
    );
    assert!(
        drop_in.contains(&format!("ReadWritePaths=\"-{}\"\n", b.display())),
        "{drop_in}"
    );
    // The store folders exist before the unit starts (ReadWritePaths= needs them).
    assert!(a.is_dir() && b.is_dir());
    let unit = std::fs::read_to_string(units.join("akvvm_service.service")).unwrap();
    assert!(unit.contains("Restart=on-failure"), "{unit}");
    assert!(
        unit.contains(&format!(
            "--settings {}",
            ext.join("config/akv-sync.settings").display()
        )),
        "{unit}"
    );
    verify(&units, "akvvm_service.service");

    // The packaged unit with a drop-in generated from a bare settings file.
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let packaged = std::fs::read_to_string(root().join("packaging/akv-sync.service")).unwrap();
    std::fs::write(
        pkg.join("akv-sync.service"),
        packaged.replace("/usr/bin/akv-sync", BIN),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["handler", "sandbox", "--settings"])
        .arg(ext.join("config/4.settings"))
        .args(["--unit", "akv-sync.service", "--unit-dir"])
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drop_in =
        std::fs::read_to_string(pkg.join("akv-sync.service.d/50-akv-sync-stores.conf")).unwrap();
    assert!(
        drop_in.contains(&format!("ReadWritePaths=-{}\n", a.display())),
        "{drop_in}"
    );
    assert!(!pkg.join("akvvm_service.service").exists());
    verify(&pkg, "akv-sync.service");
}

#[test]
fn both_units_carry_the_courtesy_priorities_the_supervisor_applies() {
    let lines = akv_sync::cli::service::COURTESY.unit_lines();
    assert!(lines.contains("Nice=10\n") && lines.contains("IOSchedulingPriority=7\n"));
    let packaged = std::fs::read_to_string(root().join("packaging/akv-sync.service")).unwrap();
    assert!(packaged.contains(&lines), "{packaged}");
    // The handler's unit, as `handler sandbox` writes it, then `systemd-analyze verify`.
    let dir = tempfile::tempdir().unwrap();
    let ext = dir.path().join("ext");
    let units = dir.path().join("units");
    handler_folder(&ext, &[&dir.path().join("store")]);
    let out = Command::new(BIN)
        .args(["handler", "--handler-dir"])
        .arg(&ext)
        .args(["sandbox", "--unit-dir"])
        .arg(&units)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = std::fs::read_to_string(units.join("akvvm_service.service")).unwrap();
    assert!(unit.contains(&lines), "{unit}");
    verify(&units, "akvvm_service.service");
    // README names the values the units carry.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let c = akv_sync::cli::service::COURTESY;
    assert!(
        readme.contains(&format!(
            "`Nice={}`, `CPUWeight={}`, `IOSchedulingPriority={}`",
            c.nice, c.cpu_weight, c.io_priority
        )),
        "README's unit priorities"
    );
}
