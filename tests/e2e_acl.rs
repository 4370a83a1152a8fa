//! A service user granted by `acls` reads the key through the link, as a web server running
//! under its own account would, after each rotation; removed from the settings (SIGHUP), it
//! loses access on the next pass.

mod daemon_support;
mod store_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use daemon_support::*;
use nix::sys::signal::Signal;
use serde_json::json;
use store_support::{TestUser, assert_root};

fn write_settings(env: &Env, acls: serde_json::Value) -> std::path::PathBuf {
    let path = env.path("s.json");
    let settings = json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "1",
            "requireInitialSync": true,
            "aclEnabled": true,
            "observedCertificates": [
                { "url": "https://alpha.vault.azure.net/secrets/web",
                  "certificateStoreLocation": env.store.display().to_string(),
                  "acls": acls }
            ]
        }
    });
    std::fs::write(&path, settings.to_string()).unwrap();
    path
}

/// What the user reads through the link is the current version's file, key included.
fn assert_reads_current(user: &TestUser, store: &Path, version: &str) {
    let link = store.join("alpha.web");
    let read = user
        .cat(&link)
        .unwrap_or_else(|| panic!("{} cannot read {}", user.name, link.display()));
    assert_eq!(
        read,
        std::fs::read(store.join(format!("alpha.web.{version}"))).unwrap()
    );
    assert!(String::from_utf8_lossy(&read).contains("PRIVATE KEY"));
}

#[test]
fn a_granted_user_reads_each_rotation_and_loses_access_once_removed_from_the_settings() {
    assert_root();
    let env = Env::start();
    // tempfile makes 0700 folders: let other users reach the store (which stays 0700 + ACL).
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = TestUser::new(&[]);
    let other = TestUser::new(&[]);
    let control = env.emulator.control();
    let v1 = control
        .create_certificate(
            "alpha",
            "web",
            akv_sync_emulator::generator::CertSpec {
                key: akv_sync_emulator::generator::KeyKind::EcP256,
                chain_len: 2,
                ..Default::default()
            },
        )
        .unwrap();
    let settings = write_settings(&env, json!([{ "user": user.name }]));
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    assert_reads_current(&user, &env.store, &v1);
    assert_eq!(other.cat(&env.store.join("alpha.web")), None);

    let mut versions = vec![v1];
    for _ in 0..2 {
        let v = control.rotate("alpha", "web").unwrap();
        d.wait_line("the rotation", |l| {
            l["message"] == "installed new version" && l["version"] == v
        });
        assert_reads_current(&user, &env.store, &v);
        assert_eq!(other.cat(&env.store.join("alpha.web")), None);
        versions.push(v);
    }

    // The user leaves the settings: the changed entry's first check repairs the ACLs.
    write_settings(&env, json!([]));
    d.signal(Signal::SIGHUP);
    let applied = d.wait_message("settings applied");
    // Ids name the store: one certificate may be observed in several.
    let id = format!("[\"alpha/web in {}\"]", env.store.display());
    assert_eq!(applied["started"], id, "{applied}");
    d.wait_line("the repair", |l| {
        l["message"] == "repaired permissions or links" && l["certificate"] == "alpha/web"
    });
    assert_eq!(user.cat(&env.store.join("alpha.web")), None);
    for v in &versions {
        assert_eq!(
            user.cat(&env.store.join(format!("alpha.web.{v}"))),
            None,
            "version {v} still readable"
        );
    }
    // Nothing was rewritten: the current version is still the one installed last.
    assert_eq!(
        installed(&env.store, "alpha", "web").as_ref(),
        versions.last()
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}
