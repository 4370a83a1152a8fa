//! The `akv-sync` daemon against other local users (issue 15, classes 4 and 9): the metrics
//! listener cannot be made to hold file descriptors, test overrides are announced, and a CA
//! file others could write is refused.

mod daemon_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use daemon_support::*;
use nix::sys::signal::Signal;
use serde_json::json;

fn ec() -> CertSpec {
    CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 2,
        format: Format::Pem,
        ..CertSpec::default()
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Whether the server has closed `s` (EOF or reset), waiting at most `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (e.g. 408) is fine; keep reading to the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn half_sent_requests_cannot_hold_the_metrics_listeners_descriptors() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec())
        .unwrap();
    let port = free_port();
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        json!({}),
        json!({ "akvSyncSettings": { "metricsAddress": format!("127.0.0.1:{port}") } }),
    );
    let mut d = env.run(&settings, &["--log", "info"]);
    d.wait_message("serving /metrics");
    d.wait_status("success");
    let pid = d.child.id();
    let before = open_fds(pid);

    // A local user opens many connections and never finishes a request.
    let cap = akv_sync::observe::http::MAX_CONNECTIONS;
    let extra = 100;
    let mut conns: Vec<TcpStream> = (0..cap + extra)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // Connections past the cap are closed at once; once they are, every one was accepted.
    for (n, s) in conns.iter_mut().rev().take(extra).enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "connection {n} past the cap still open"
        );
    }
    let during = open_fds(pid);
    assert!(
        during <= before + cap + 8,
        "{during} descriptors open with {cap} allowed (before: {before})"
    );

    // The agent still reloads its settings.
    d.signal(Signal::SIGHUP);
    d.wait_message("settings applied");

    // Every half-sent request is dropped after the header-read timeout.
    let limit = akv_sync::observe::http::HEADER_READ_TIMEOUT + Duration::from_secs(10);
    let start = Instant::now();
    for s in conns.iter_mut() {
        let left = limit
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        assert!(
            closed_within(s, left),
            "a half-sent request outlived the timeout"
        );
    }
    drop(conns);
    let (code, body) = scrape(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn run_warns_about_each_test_override_in_force() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec())
        .unwrap();
    let settings = env.write_settings("s.json", &[("alpha", "web")], json!({}), json!({}));
    let mut d = env.run(&settings, &[]);
    for name in [
        "AKV_SYNC_CONNECT_TO",
        "AKV_SYNC_CA_FILE",
        "AKV_SYNC_IMDS_ENDPOINT",
    ] {
        d.wait_line(name, |v| v["level"] == "WARN" && v["variable"] == name);
    }
    d.wait_status("success");
}

#[test]
fn a_ca_file_others_could_write_is_refused() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec())
        .unwrap();
    let settings = env.write_settings("s.json", &[("alpha", "web")], json!({}), json!({}));
    let pem = std::fs::read(&env.emulator.ca_file).unwrap();

    let writable = env.path("writable-ca.pem");
    std::fs::write(&writable, &pem).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    let foreign = env.path("foreign-ca.pem");
    std::fs::write(&foreign, &pem).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();

    for ca in [&writable, &foreign] {
        let out = env
            .command(&["once", "--settings", settings.to_str().unwrap()])
            .env("AKV_SYNC_CA_FILE", ca)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was trusted", ca.display());
        assert!(
            stderr.contains(&ca.display().to_string()),
            "the refusal names the file: {stderr}"
        );
        assert!(installed(&env.store, "alpha", "web").is_none());
    }
    // The same content, root's and not writable by others, is trusted.
    let good = env.path("good-ca.pem");
    std::fs::write(&good, &pem).unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env
        .command(&["once", "--settings", settings.to_str().unwrap()])
        .env("AKV_SYNC_CA_FILE", &good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_retry_after_of_136_years_pauses_the_vault_for_a_minute() {
    use akv_sync_emulator::{Fault, FaultAction, FaultTarget};
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec())
        .unwrap();
    env.emulator.control().inject_fault(
        Fault::new(
            FaultTarget::Vault,
            "/secrets/*",
            FaultAction::Status {
                status: 429,
                body: None,
                retry_after: Some(u32::MAX),
            },
        )
        .times(1),
    );
    let settings = env.write_settings("s.json", &[("alpha", "web")], json!({}), json!({}));
    let start = Instant::now();
    let mut d = env.run(&settings, &[]);
    let throttled = d.wait_message("vault throttled (429)");
    assert_eq!(throttled["pause_s"], 60.0);
    // The vault is asked again after the cap, and the certificate arrives.
    d.wait_status("success");
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert!(installed(&env.store, "alpha", "web").is_some());
}
