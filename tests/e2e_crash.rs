//! SIGKILL of `akv-sync run` during the initial sync and during a rotation; the restarted
//! agent converges (gate `success`, every link complete at the vault's current version) and
//! redoes no work beyond the certificates that were not on disk yet: a certificate already on
//! disk at the current version is not rewritten (same inode, same mtime) and each
//! certificate is fetched exactly once.

mod daemon_support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind, generate, to_pem};
use akv_sync_emulator::{Fault, FaultAction, FaultTarget};
use daemon_support::*;
use nix::sys::signal::Signal;
use serde_json::json;

/// (inode, mtime in ns) of a certificate's version file and of its link.
type Stamp = ((u64, i128), (u64, i128));

fn stamp(store: &Path, vault: &str, name: &str, version: &str) -> Stamp {
    let of = |m: std::fs::Metadata| {
        (
            m.ino(),
            m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        )
    };
    let file = std::fs::metadata(store.join(format!("{vault}.{name}.{version}"))).unwrap();
    let link = std::fs::symlink_metadata(store.join(format!("{vault}.{name}"))).unwrap();
    (of(file), of(link))
}

/// What is on disk for each name: its linked version and stamps (only complete installs:
/// a link exists only once its file is complete).
fn snapshot(store: &Path, vault: &str, names: &[String]) -> BTreeMap<String, (String, Stamp)> {
    names
        .iter()
        .filter_map(|n| {
            let v = installed(store, vault, n)?;
            let s = stamp(store, vault, n, &v);
            Some((n.clone(), (v, s)))
        })
        .collect()
}

fn installs(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "installed new version")
        .collect()
}

/// One certificate served under `n` names (generating hundreds of keys would dominate).
fn serve(env: &Env, vault: &str, n: usize) -> Vec<String> {
    let g = generate(&CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 2,
        format: Format::Pem,
        ..CertSpec::default()
    })
    .unwrap();
    let pem = to_pem(&g);
    let control = env.emulator.control();
    (0..n)
        .map(|i| {
            let name = format!("c{i}");
            control
                .set_raw_secret(vault, &name, &pem, "application/x-pem-file")
                .unwrap();
            name
        })
        .collect()
}

/// Restart after the kill; check convergence and that only missing work was done.
fn restart_and_converge(env: &Env, names: &[String], before: &BTreeMap<String, (String, Stamp)>) {
    let control = env.emulator.control();
    control.clear_faults();
    // Hourly polling after the restart, so that only the first check of each certificate
    // falls within the test.
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| ("alpha", n.as_str())).collect();
    // The restarted agent counts its own requests: the emulator may still be answering
    // requests of the killed one (they were delayed), which must not count here.
    let port = free_port();
    let settings = &env.write_settings(
        "s.json",
        &pairs,
        json!({ "pollingIntervalInS": "3600" }),
        json!({ "akvSyncSettings": { "metricsAddress": format!("127.0.0.1:{port}") } }),
    );
    let mut d = env.run(settings, &["--log", "info"]);
    d.wait_status("success");
    let (_, metrics) = scrape(port, "/metrics");
    let (code, lines) = d.stop();
    assert_eq!(code, Some(0));
    let current: BTreeMap<&String, String> = names
        .iter()
        .map(|n| (n, control.current_version("alpha", n).unwrap()))
        .collect();
    // Converged: every link names the vault's current version, a complete file.
    for n in names {
        assert_eq!(
            installed(&env.store, "alpha", n).as_ref(),
            Some(&current[n]),
            "{n}"
        );
        let text = std::fs::read_to_string(env.store.join(format!("alpha.{n}"))).unwrap();
        akv_sync_material::convert(&text, "application/x-pem-file", 0)
            .unwrap_or_else(|e| panic!("{n}: incomplete file after restart: {e}"));
    }
    let up_to_date: Vec<&String> = before
        .iter()
        .filter(|(n, (v, _))| *v == current[n])
        .map(|(n, _)| n)
        .collect();
    // Already current on disk: not rewritten.
    for n in &up_to_date {
        assert_eq!(
            stamp(&env.store, "alpha", n, &current[n]),
            before[*n].1,
            "{n} was rewritten although current"
        );
    }
    // Completed on restart: exactly the certificates that were not current on disk. The one
    // killed between renaming its version file into place and swapping its link is finished
    // by a repair (the link only; its file is not written again).
    let completed = |message: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == message)
            .map(|v| {
                v["certificate"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("alpha/")
                    .to_owned()
            })
            .collect()
    };
    let repaired = completed("repaired permissions or links");
    assert!(
        repaired.len() <= 1,
        "only an interrupted certificate may need a repair: {repaired:?}"
    );
    let mut reinstalled = completed("installed new version");
    reinstalled.extend(repaired);
    reinstalled.sort();
    let mut missing: Vec<String> = names
        .iter()
        .filter(|n| !up_to_date.contains(n))
        .cloned()
        .collect();
    missing.sort();
    assert_eq!(reinstalled, missing);
    eprintln!(
        "after the kill: {} current on disk (kept, not rewritten), {} installed on restart",
        up_to_date.len(),
        reinstalled.len()
    );
    // One GET per certificate: no retries, no second pass.
    assert_eq!(
        metric(
            &metrics,
            "akv_sync_requests_total",
            "target=\"vault\",status=\"200\""
        ),
        Some(names.len() as f64),
        "{metrics}"
    );
    // Left-over temporaries of the interrupted writes are gone.
    let temporaries = std::fs::read_dir(&env.store)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(akv_sync::store::TEMP_PREFIX)
        })
        .count();
    assert_eq!(temporaries, 0);
}

#[test]
fn killed_during_the_initial_sync_the_restart_installs_only_what_was_missing() {
    let env = Env::start();
    let names = serve(&env, "alpha", 200);
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| ("alpha", n.as_str())).collect();
    let settings = env.write_settings("s.json", &pairs, json!({}), json!({}));
    // Slow answers, so that the kill lands in the middle of the sync.
    env.emulator.control().inject_fault(Fault::new(
        FaultTarget::Vault,
        "/secrets/*",
        FaultAction::Delay { millis: 100 },
    ));
    let mut d = env.run(&settings, &["--log", "info"]);
    for _ in 0..40 {
        d.wait_message("installed new version");
    }
    d.signal(Signal::SIGKILL);
    d.child.wait().unwrap();
    let before = snapshot(&env.store, "alpha", &names);
    assert!(
        before.len() >= 40 && before.len() < names.len(),
        "killed mid-sync: {} on disk",
        before.len()
    );
    restart_and_converge(&env, &names, &before);
}

#[test]
fn killed_during_a_rotation_the_restart_installs_only_what_was_not_rotated_yet() {
    let env = Env::start();
    let names = serve(&env, "alpha", 40);
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| ("alpha", n.as_str())).collect();
    let settings = env.write_settings("s.json", &pairs, json!({}), json!({}));
    let mut d = env.run(&settings, &["--log", "info"]);
    d.wait_status("success");
    let control = env.emulator.control();
    control.inject_fault(Fault::new(
        FaultTarget::Vault,
        "/secrets/*",
        FaultAction::Delay { millis: 300 },
    ));
    let rotated = serve(&env, "alpha", 40);
    assert_eq!(rotated, names);
    let mark = d.seen.len();
    let mut seen = 0;
    while seen < 5 {
        d.wait_message("installed new version");
        seen = installs(&d.seen[mark..]).len();
    }
    d.signal(Signal::SIGKILL);
    d.child.wait().unwrap();
    let before = snapshot(&env.store, "alpha", &names);
    assert_eq!(before.len(), names.len(), "every certificate has a link");
    let at_new = before
        .iter()
        .filter(|(n, (v, _))| Some(v) == control.current_version("alpha", n).as_ref())
        .count();
    assert!(
        at_new >= 5 && at_new < names.len(),
        "killed mid-rotation: {at_new} rotated"
    );
    restart_and_converge(&env, &names, &before);
}
