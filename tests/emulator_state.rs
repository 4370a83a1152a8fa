//! The emulator's state folder and listeners against other local users (issue 15, class 10).

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;

use akv_sync_emulator::{EmulatorError, EmulatorOptions};

#[tokio::test]
async fn a_pre_created_state_folder_with_a_planted_ca_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Another user got there first: the folder exists, and ca.pem points at a victim file.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("ca.pem")).unwrap();

    let Err(err) = akv_sync_emulator::start(EmulatorOptions {
        state_dir: state.clone(),
        ..EmulatorOptions::default()
    })
    .await
    else {
        panic!("an existing state folder was used");
    };
    assert!(matches!(err, EmulatorError::StateDirExists { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[tokio::test]
async fn default_state_folders_are_fresh_private_and_hold_the_arc_keys() {
    let a = akv_sync_emulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    let b = akv_sync_emulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    let (sa, sb) = (a.ca_file.parent().unwrap(), b.ca_file.parent().unwrap());
    assert_ne!(sa, sb);
    for state in [sa, sb] {
        let mode = std::fs::metadata(state).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{}", state.display());
        // The random part is long enough that no one guesses it ahead of time.
        let name = state.file_name().unwrap().to_str().unwrap();
        let random = name.strip_prefix("akv-sync-emulator-").unwrap();
        assert!(random.len() >= 32, "{name}");
    }
    // An Arc challenge names a key file inside the state folder, not HIMDS's real folder.
    let resp = akv_sync::azure::net::NetConfig::default()
        .client()
        .unwrap()
        .get(format!(
            "{}/oauth2/token?api-version=2020-06-01&resource=https://vault.azure.net",
            a.arc_endpoint
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let key = challenge.trim_start_matches("Basic realm=");
    assert!(
        std::path::Path::new(key).starts_with(sa),
        "{key} is outside {}",
        sa.display()
    );
    for s in [sa.to_path_buf(), sb.to_path_buf()] {
        let _ = std::fs::remove_dir_all(s);
    }
}

#[tokio::test]
async fn a_non_loopback_listen_address_needs_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    // TEST-NET-1: not an address of this machine, so nothing is ever exposed.
    let Err(err) = akv_sync_emulator::start(EmulatorOptions {
        listen: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        state_dir: dir.path().join("state"),
        ..EmulatorOptions::default()
    })
    .await
    else {
        panic!("a non-loopback address was accepted");
    };
    assert!(matches!(err, EmulatorError::RemoteListen { .. }), "{err}");
    // Refused before anything was written.
    assert!(!dir.path().join("state").exists());
}
