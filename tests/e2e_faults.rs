//! The fault matrix of issue 9: one test per fault, each stating the status the agent must
//! report, the log line it must write, and that the last good files stay intact.
//!
//! Most rows run the real `akv-sync run` binary (JSON logs, `pollingIntervalInS` 1) against
//! the emulator; the rows about long waits (IMDS 410 for 60 s, a clock jump of two days) run
//! the agent in-process in tokio's paused time, with its log captured.
//!
//! | fault | when | expected status | expected log line | files | observed |
//! |---|---|---|---|---|---|
//! | IMDS down at start (500, then a reset) | start, v2 in vault, v1 on disk | `transitioning` → `success` | debug `identity request failed; retrying` | v1 intact until the token comes, then v2 | as expected (≈3 s of identity retries) |
//! | IMDS refusing connections at start (nothing listens yet) | start, in-process | `transitioning` → `success` once it listens | debug `identity request failed; retrying`, error `identity endpoint … unreachable` | nothing written before the token | as expected (second attempt, 1 s later, succeeds) |
//! | IMDS 410 for 60 s | start | `transitioning` → `success` (no `error`) | debug `identity request failed; retrying` (410) ×6 | installed after ≈63 s | 6 × 410 then success at 63 s (virtual) |
//! | vault 5xx bursts (30 × 503/500) | mid-run, 12 rotated certificates | stays `success` | warn `check failed; the installed files stay as they are`, error names `ServiceUnavailable` | v1 intact while failing; all reach v2 | as expected |
//! | 429 storm with `Retry-After: 1` | mid-run, 20 rotated certificates | stays `success` | warn `vault throttled (429); pausing every request to it` (`pause_s` 1) + `check failed` | v1 intact; all reach v2 | as expected |
//! | 429 storm without `Retry-After` | mid-run, 20 rotated certificates | stays `success` | same, `pause_s` 1, 2, 4, 8 (one growth per wave) | v1 intact; all reach v2 | as expected after a fix: before it, the 16 concurrent 429s of one wave grew the pause 16 times, to the 60 s cap (observed, test timed out); now 1, 2, 4, 8 s |
//! | connection resets, garbage and truncated bodies, timeouts, 404, single 500/503/429 | mid-run | — | — | v1 intact, recovers | covered by `agent_emulator::faults_leave_the_last_good_files_and_recover` |
//! | wrong content type (a PFX labelled `application/x-pem-file`) | mid-run | stays `success` | warn `check failed…`, error `the value holds no PEM block (is the content type right? …)` | v1 intact | as expected |
//! | password-protected PFX (`openssl pkcs12 -passout pass:x`) | mid-run | stays `success` | warn `check failed…`, error `this PFX needs a password…` | v1 intact | as expected |
//! | mismatched key (key of another certificate) | mid-run | stays `success` | warn `check failed…`, error `the private key matches none of the …` | v1 intact | as expected |
//! | disabled version (the current one) | mid-run | stays `success` | warn `check failed…`, error `this version is disabled in Key Vault` | v1 intact; back to normal once enabled | as expected |
//! | 403 after a role removal on one vault | mid-run, two vaults | stays `success` | warn `check failed…`, error names `Key Vault Secrets User`; the other vault keeps rotating | v1 intact; recovers on grant | as expected |
//! | disk full (64 KiB tmpfs as the store) | mid-run, rotation | stays `success` | warn `check failed…`, error `no space left while writing …` | v1 intact, no temporary left; v2 once space is freed | as expected |
//! | store folder deleted while running | mid-run | stays `success` | warn `the store folder was removed or replaced; opening it again`, info `installed new version` | folder re-created 0700 with the current version | as expected |
//! | clock jump | monotonic jump of 48 h (suspend/resume), paused time | stays `success` | info `current` for each certificate | unchanged (no rewrite) | one check per certificate and one token refresh; no catch-up burst |
//!
//! What a clock jump means here: the agent schedules with tokio's monotonic clock and takes
//! token lifetimes from `expires_in` (relative), so a wall-clock jump (NTP step, `date -s`)
//! changes neither its schedule nor its tokens; the wall clock only feeds the expired /
//! not-yet-valid warnings of the material. A jump of the monotonic clock (a VM suspended and
//! resumed, simulated with `tokio::time::advance`) makes every pending wait end at once: the
//! test pins that this costs one check per certificate and one token refresh, not one check
//! per missed interval.

mod agent_support;
mod daemon_support;
mod store_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind, generate, to_pem};
use akv_sync_emulator::{Fault, FaultAction, FaultTarget, IdentityRef, Server};
use daemon_support::{Daemon, Env, installed};
use serde_json::json;

fn spec(format: Format) -> CertSpec {
    CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 2,
        format,
        ..CertSpec::default()
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// What a certificate has on disk: the version its link names and that file's bytes.
#[derive(Debug, Clone, PartialEq)]
struct OnDisk {
    vault: String,
    name: String,
    version: String,
    bytes: Vec<u8>,
}

fn on_disk(store: &Path, vault: &str, name: &str) -> OnDisk {
    let version =
        installed(store, vault, name).unwrap_or_else(|| panic!("{vault}/{name} is not installed"));
    let bytes = std::fs::read(store.join(format!("{vault}.{name}.{version}"))).unwrap();
    OnDisk {
        vault: vault.into(),
        name: name.into(),
        version,
        bytes,
    }
}

/// The link still names the same version, and that file (read through the link too) has
/// the same bytes.
fn assert_intact(store: &Path, good: &OnDisk, what: &str) {
    let now = on_disk(store, &good.vault, &good.name);
    assert_eq!(now.version, good.version, "{what}: the link moved");
    assert!(now.bytes == good.bytes, "{what}: the file changed");
    let via_link = std::fs::read(store.join(format!("{}.{}", good.vault, good.name))).unwrap();
    assert!(via_link == good.bytes, "{what}: the link reads other bytes");
}

/// An earlier version stays on disk, unchanged, after a newer one is installed.
fn assert_kept(store: &Path, good: &OnDisk) {
    let kept = std::fs::read(store.join(format!("{}.{}.{}", good.vault, good.name, good.version)))
        .unwrap();
    assert!(
        kept == good.bytes,
        "{}/{}: v1 changed",
        good.vault,
        good.name
    );
}

/// The emulator with `certs` created, the daemon running and through its initial sync.
fn running(certs: &[(&str, &str)], log: &str) -> (Env, Daemon, Vec<OnDisk>) {
    let env = Env::start();
    let control = env.emulator.control();
    for (i, (v, n)) in certs.iter().enumerate() {
        let format = if i % 2 == 0 {
            Format::Pkcs12
        } else {
            Format::Pem
        };
        control.create_certificate(v, n, spec(format)).unwrap();
    }
    let settings = env.write_settings("s.json", certs, json!({}), json!({}));
    let mut d = env.run(&settings, &["--log", log]);
    d.wait_status("success");
    let good = certs
        .iter()
        .map(|(v, n)| on_disk(&env.store, v, n))
        .collect();
    (env, d, good)
}

/// A line already read (from line `from` on), or the next one, for which `pred` holds.
fn seen_or_wait(
    d: &mut Daemon,
    from: usize,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let earlier = d.seen[from..]
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| pred(v));
    earlier.unwrap_or_else(|| d.wait_line(what, pred))
}

fn is_check_failed(l: &serde_json::Value, cert: Option<&str>, error_has: &str) -> bool {
    l["message"] == "check failed; the installed files stay as they are"
        && cert.is_none_or(|c| l["certificate"] == c)
        && l["error"].as_str().is_some_and(|e| e.contains(error_has))
}

/// Stop the daemon; no status line other than `success` was written after the start.
fn stop_with_success_only(d: Daemon) -> Vec<String> {
    let (code, lines) = d.stop();
    assert_eq!(code, Some(0));
    let statuses: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["status"].as_str().map(str::to_owned))
        .collect();
    assert!(
        statuses
            .iter()
            .skip_while(|s| *s != "success")
            .all(|s| s == "success"),
        "the status left success: {statuses:?}"
    );
    lines
}

fn vault_fault(path: &str, action: FaultAction, times: u32) -> Fault {
    Fault::new(FaultTarget::Vault, path, action).times(times)
}

fn status(code: u16, retry_after: Option<u32>) -> FaultAction {
    FaultAction::Status {
        status: code,
        body: None,
        retry_after,
    }
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

#[test]
fn imds_down_at_start_keeps_the_last_good_files_and_the_gate_reaches_success() {
    let (env, d, good) = running(&[("alpha", "web")], "info");
    d.stop();
    let control = env.emulator.control();
    let v2 = control.rotate("alpha", "web").unwrap();
    control.inject_fault(Fault::new(FaultTarget::Imds, "*", status(500, None)).times(1));
    control.inject_fault(Fault::new(FaultTarget::Imds, "*", FaultAction::Reset).times(1));
    let settings = env.path("s.json");
    let mut d = env.run(&settings, &["--log", "debug"]);
    d.wait_status("transitioning");
    d.wait_line("an identity retry", |l| {
        l["message"] == "identity request failed; retrying"
    });
    assert_intact(&env.store, &good[0], "IMDS down");
    d.wait_status("success");
    assert_eq!(installed(&env.store, "alpha", "web"), Some(v2));
    assert_kept(&env.store, &good[0]);
    let c = control.counters();
    assert_eq!(c.server_requests(Server::Imds, Some(500)), 1);
    assert_eq!(c.server_requests(Server::Imds, Some(0)), 1, "the reset");
    d.stop();
}

/// Captured JSON log lines of the in-process agent (the test's own thread: a
/// current-thread runtime runs every task there), optionally also sent to a channel.
#[derive(Clone, Default)]
struct Captured(
    Arc<Mutex<Vec<u8>>>,
    Option<tokio::sync::mpsc::UnboundedSender<String>>,
);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        if let Some(tx) = &self.1 {
            let _ = tx.send(String::from_utf8_lossy(buf).into_owned());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Forward every connection to `listener` to `to`, for the rest of the test process.
fn forward(listener: std::net::TcpListener, to: std::net::SocketAddr) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let Ok(server) = std::net::TcpStream::connect(to) else {
                continue;
            };
            let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
}

#[tokio::test]
async fn imds_refusing_connections_at_start_is_retried_until_it_listens() {
    use agent_support::*;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let log = Captured(Arc::default(), Some(tx));
    let _guard = log.install();
    let w = World::start().await;
    w.create(&[("alpha", "web")]);
    // Nothing listens on this port until the agent was refused once.
    let port = daemon_support::free_port();
    let endpoint = format!("http://127.0.0.1:{port}/metadata/identity");
    let imds: std::net::SocketAddr = w
        .emulator
        .imds_endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let settings = w.settings(&[url("alpha", "web")], json!({}));
    let (probe, _events) = probe();
    let mut net = akv_sync::azure::net::net_for_emulator(w.emulator.vault_addr, &w.emulator.ca_pem);
    net.request_timeout = Some(Duration::from_secs(5));
    let ports = akv_sync::cli::ports::ports_with(
        &settings,
        &net,
        Some(endpoint),
        probe.status.clone(),
        probe.observer.clone(),
    )
    .unwrap();
    let agent = akv_sync_actors::Agent::start(&settings, ports);
    loop {
        let line: serde_json::Value =
            serde_json::from_str(&rx.recv().await.unwrap()).unwrap_or_default();
        if line["message"] == "identity request failed; retrying"
            && line["error"]
                .as_str()
                .is_some_and(|e| e.contains("unreachable"))
        {
            break;
        }
    }
    assert_eq!(
        agent.gate().view().status.state,
        akv_sync_actors::State::Transitioning
    );
    assert!(w.installed("alpha", "web").is_none());
    forward(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        imds,
    );
    let status = wait_state(&agent, akv_sync_actors::State::Success).await;
    assert!(status.message.contains("1 of 1"), "{}", status.message);
    assert!(w.installed("alpha", "web").is_some());
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn imds_answering_410_for_60_seconds_is_waited_out_by_the_gate() {
    use agent_support::*;
    let log = Captured::default();
    let _guard = log.install();
    let w = World::start().await;
    w.create(&[("alpha", "web")]);
    let control = w.emulator.control();
    control.inject_fault(Fault::new(FaultTarget::Imds, "*", status(410, None)));
    let start = tokio::time::Instant::now();
    let clear = {
        let control = control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            control.clear_faults();
        })
    };
    let (probe, _events) = probe();
    let agent = w.start_agent(&w.settings(&[url("alpha", "web")], json!({})), &probe);
    let status = wait_state(&agent, akv_sync_actors::State::Success).await;
    let took = start.elapsed();
    clear.await.unwrap();
    assert!(status.message.contains("1 of 1"), "{}", status.message);
    // Retries after 1, 2, 4, 8, 16 and 32 s: the 7th request, at 63 s, is past the 60 s.
    assert_eq!(
        control.counters().server_requests(Server::Imds, Some(410)),
        6
    );
    assert!(
        took >= Duration::from_secs(60) && took < Duration::from_secs(70),
        "{took:?}"
    );
    let states: Vec<_> = probe
        .statuses
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.state.clone())
        .collect();
    assert!(
        !states.contains(&akv_sync_actors::State::Error),
        "{states:?}"
    );
    let retries = log
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"] == "identity request failed; retrying"
                && l["error"].as_str().is_some_and(|e| e.contains("410"))
        })
        .count();
    assert_eq!(retries, 6);
    assert!(w.installed("alpha", "web").is_some());
    agent.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Key Vault
// ---------------------------------------------------------------------------------------

/// Rotate every certificate under `faults`; wait until each has the new version. Returns the
/// new versions. `first_failure` is the expected `check failed` error text.
fn rotate_through(
    env: &Env,
    d: &mut Daemon,
    good: &[OnDisk],
    faults: Vec<Fault>,
    first_failure: &str,
) -> Vec<String> {
    let control = env.emulator.control();
    for f in faults {
        control.inject_fault(f);
    }
    let new: Vec<String> = good
        .iter()
        .map(|g| control.rotate(&g.vault, &g.name).unwrap())
        .collect();
    let failed = d.wait_line("a failed check", |l| {
        is_check_failed(l, None, first_failure)
    });
    let id = failed["certificate"].as_str().unwrap().to_owned();
    let g = good
        .iter()
        .find(|g| format!("{}/{}", g.vault, g.name) == id)
        .unwrap();
    assert_intact(&env.store, g, first_failure);
    for (g, v) in good.iter().zip(&new) {
        let v = v.clone();
        let id = format!("{}/{}", g.vault, g.name);
        if installed(&env.store, &g.vault, &g.name).as_ref() != Some(&v) {
            d.wait_line(&format!("{id} installed"), |l| {
                l["message"] == "installed new version"
                    && l["certificate"] == id
                    && l["version"] == v
            });
        }
        assert_kept(&env.store, g);
    }
    new
}

#[test]
fn vault_5xx_bursts_leave_the_files_and_every_certificate_catches_up() {
    let n = names("c", 12);
    let certs: Vec<(&str, &str)> = n.iter().map(|c| ("alpha", c.as_str())).collect();
    let (env, mut d, good) = running(&certs, "info");
    rotate_through(
        &env,
        &mut d,
        &good,
        vec![
            vault_fault("/secrets/*", status(503, None), 20),
            vault_fault("/secrets/*", status(500, None), 10),
        ],
        "ServiceUnavailable",
    );
    let c = env.emulator.control().counters();
    assert_eq!(c.vault_requests("alpha", Some(503)), 20);
    assert_eq!(c.vault_requests("alpha", Some(500)), 10);
    stop_with_success_only(d);
}

/// 20 certificates rotated through a storm of 40 answers 429; returns the vault's pauses (s).
fn throttle_storm(retry_after: Option<u32>) -> Vec<f64> {
    let n = names("c", 20);
    let certs: Vec<(&str, &str)> = n.iter().map(|c| ("alpha", c.as_str())).collect();
    let (env, mut d, good) = running(&certs, "info");
    rotate_through(
        &env,
        &mut d,
        &good,
        vec![vault_fault("/secrets/*", status(429, retry_after), 40)],
        "",
    );
    let lines = stop_with_success_only(d);
    let pauses: Vec<f64> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "vault throttled (429); pausing every request to it")
        .filter_map(|l| l["pause_s"].as_f64())
        .collect();
    assert!(!pauses.is_empty(), "the vault was paused");
    assert_eq!(
        env.emulator
            .control()
            .counters()
            .vault_requests("alpha", Some(429)),
        40
    );
    pauses
}

#[test]
fn a_429_storm_with_retry_after_pauses_the_vault_for_that_long_and_every_certificate_arrives() {
    let pauses = throttle_storm(Some(1));
    assert!(pauses.iter().all(|p| *p == 1.0), "{pauses:?}");
}

#[test]
fn a_429_storm_without_retry_after_pauses_the_vault_with_growing_waits_and_every_certificate_arrives()
 {
    let pauses = throttle_storm(None);
    assert_eq!(pauses[0], 1.0, "{pauses:?}");
    // One burst of concurrent requests throttled together is one throttle, not one per
    // request: the pause must not jump to the 60 s cap after a single storm of 40 answers.
    assert!(pauses.iter().all(|p| *p <= 8.0), "{pauses:?}");
    eprintln!("observed pauses: {pauses:?}");
}

/// A bad value is set as the newest version: refused with `error_has`, the files stay.
fn refused(value: &str, content_type: &str, error_has: &str) {
    let (env, mut d, good) = running(&[("alpha", "web")], "info");
    env.emulator
        .control()
        .set_raw_secret("alpha", "web", value, content_type)
        .unwrap();
    let line = d.wait_line("the refusal", |l| {
        is_check_failed(l, Some("alpha/web"), error_has)
    });
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("the installed files stay"),
        "{line}"
    );
    // Another poll, still refused, still intact.
    d.wait_line("the next refusal", |l| {
        is_check_failed(l, Some("alpha/web"), error_has)
    });
    assert_intact(&env.store, &good[0], error_has);
    assert!(
        !d.seen
            .iter()
            .any(|l| l.contains(value.get(..60).unwrap_or(value))),
        "the value reached the logs"
    );
    stop_with_success_only(d);
}

#[test]
fn a_pfx_labelled_as_pem_is_refused_naming_the_content_type() {
    let g = generate(&spec(Format::Pkcs12)).unwrap();
    let value = akv_sync_emulator::generator::secret_value(&g, Format::Pkcs12).unwrap();
    refused(
        &value,
        "application/x-pem-file",
        "is the content type right?",
    );
}

#[test]
fn a_password_protected_pfx_is_refused_as_needing_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(&spec(Format::Pem)).unwrap();
    let pem_path = dir.path().join("in.pem");
    std::fs::write(&pem_path, to_pem(&g).as_bytes()).unwrap();
    let pfx = dir.path().join("out.pfx");
    let out = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:x", "-in"])
        .arg(&pem_path)
        .arg("-out")
        .arg(&pfx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pfx).unwrap());
    refused(&value, "application/x-pkcs12", "this PFX needs a password");
}

#[test]
fn a_key_that_belongs_to_another_certificate_is_refused() {
    let a = generate(&spec(Format::Pem)).unwrap();
    let b = generate(&spec(Format::Pem)).unwrap();
    let key_of_b = to_pem(&b);
    let key_of_b = key_of_b
        .split("-----BEGIN CERTIFICATE-----")
        .next()
        .unwrap();
    let certs_of_a = to_pem(&a);
    let certs_of_a = &certs_of_a[certs_of_a.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    refused(
        &format!("{key_of_b}{certs_of_a}"),
        "application/x-pem-file",
        "the private key matches none of the",
    );
}

#[test]
fn a_disabled_current_version_is_reported_and_the_files_stay_until_it_is_enabled() {
    let (env, mut d, good) = running(&[("alpha", "web")], "debug");
    let control = env.emulator.control();
    control
        .disable_version("alpha", "web", &good[0].version)
        .unwrap();
    d.wait_line("the refusal", |l| {
        is_check_failed(
            l,
            Some("alpha/web"),
            "this version is disabled in Key Vault",
        )
    });
    assert_intact(&env.store, &good[0], "disabled");
    control
        .enable_version("alpha", "web", &good[0].version)
        .unwrap();
    d.wait_line("back to normal", |l| {
        l["message"] == "current" && l["certificate"] == "alpha/web"
    });
    assert_intact(&env.store, &good[0], "enabled again");
    stop_with_success_only(d);
}

#[test]
fn a_role_removed_on_one_vault_mid_run_stops_only_that_vault() {
    let (env, mut d, good) = running(&[("alpha", "web"), ("beta", "api")], "info");
    let control = env.emulator.control();
    let mark = d.seen.len();
    control.revoke("alpha", &IdentityRef::SystemAssigned);
    let alpha2 = control.rotate("alpha", "web").unwrap();
    let beta2 = control.rotate("beta", "api").unwrap();
    d.wait_line("alpha refused", |l| {
        is_check_failed(l, Some("alpha/web"), "Key Vault Secrets User")
    });
    seen_or_wait(&mut d, mark, "beta rotates", |l| {
        l["message"] == "installed new version" && l["version"] == beta2
    });
    d.wait_line("alpha still refused", |l| {
        is_check_failed(l, Some("alpha/web"), "Key Vault Secrets User")
    });
    assert_intact(&env.store, &good[0], "403");
    control.grant("alpha", &IdentityRef::SystemAssigned);
    d.wait_line("alpha recovers", |l| {
        l["message"] == "installed new version" && l["version"] == alpha2
    });
    assert_kept(&env.store, &good[0]);
    stop_with_success_only(d);
}

// ---------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        store_support::assert_root();
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn a_full_disk_refuses_the_new_version_and_keeps_the_current_one() {
    let env = Env::start();
    let _fs = Tmpfs::mount(&env.store, "64k");
    let control = env.emulator.control();
    control
        .create_certificate("alpha", "web", spec(Format::Pem))
        .unwrap();
    let settings = env.write_settings("s.json", &[("alpha", "web")], json!({}), json!({}));
    let mut d = env.run(&settings, &["--log", "info"]);
    d.wait_status("success");
    let good = on_disk(&env.store, "alpha", "web");
    // Fill what is left (a write past the end fails with ENOSPC and leaves what fit).
    let filler = env.store.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 * 1024]);
    let v2 = control.rotate("alpha", "web").unwrap();
    d.wait_line("no space", |l| {
        is_check_failed(l, Some("alpha/web"), "no space left while writing")
    });
    assert_intact(&env.store, &good, "disk full");
    assert!(
        store_support::temporaries(&env.store).is_empty(),
        "no temporary is left behind"
    );
    std::fs::remove_file(&filler).unwrap();
    d.wait_line("v2 once there is room", |l| {
        l["message"] == "installed new version" && l["version"] == v2
    });
    assert_kept(&env.store, &good);
    stop_with_success_only(d);
}

#[test]
fn a_store_folder_deleted_while_running_is_recreated_with_the_current_version() {
    let (env, mut d, good) = running(&[("alpha", "web"), ("alpha", "api")], "info");
    let mark = d.seen.len();
    std::fs::remove_dir_all(&env.store).unwrap();
    seen_or_wait(&mut d, mark, "the store reopened", |l| {
        l["message"] == "the store folder was removed or replaced; opening it again"
    });
    for g in &good {
        let (id, v) = (format!("{}/{}", g.vault, g.name), g.version.clone());
        seen_or_wait(&mut d, mark, &format!("{id} reinstalled"), |l| {
            l["message"] == "installed new version" && l["certificate"] == id && l["version"] == v
        });
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env.store).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for g in &good {
        // The same version again: the vault's bytes, converted the same way.
        assert_intact(&env.store, g, "re-created");
    }
    stop_with_success_only(d);
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_two_day_clock_jump_costs_one_check_per_certificate_and_one_token() {
    use agent_support::*;
    let log = Captured::default();
    let _guard = log.install();
    let w = World::start().await;
    let certs = [("alpha", "a"), ("alpha", "b"), ("beta", "c")];
    w.create(&certs);
    let urls: Vec<String> = certs.iter().map(|(v, n)| url(v, n)).collect();
    let (probe, mut events) = probe();
    // Polling hourly; tokens live 24 h (the emulator's default).
    let agent = w.start_agent(
        &w.settings(&urls, json!({ "pollingIntervalInS": "3600" })),
        &probe,
    );
    wait_state(&agent, akv_sync_actors::State::Success).await;
    for _ in 0..certs.len() {
        events.checks.recv().await.unwrap();
    }
    let before: Vec<OnDisk> = certs.iter().map(|(v, n)| on_disk(&w.store, v, n)).collect();
    let control = w.emulator.control();
    let gets_before = control.counters().server_requests(Server::Vault, Some(200));
    assert_eq!(
        control.counters().tokens_for(&IdentityRef::SystemAssigned),
        1
    );

    // 48 hours pass at once: 48 polling intervals and two token lifetimes.
    tokio::time::advance(Duration::from_secs(48 * 3600)).await;
    for _ in 0..certs.len() {
        let (id, outcome) = events.checks.recv().await.unwrap();
        assert!(
            matches!(outcome, akv_sync_actors::CheckOutcome::Current { .. }),
            "{id}: {outcome:?}"
        );
    }
    let counters = control.counters();
    assert_eq!(
        counters.server_requests(Server::Vault, Some(200)) - gets_before,
        certs.len() as u64,
        "one GET per certificate, not one per missed interval"
    );
    assert_eq!(
        counters.tokens_for(&IdentityRef::SystemAssigned),
        2,
        "the expired token is replaced once"
    );
    for g in &before {
        assert_intact(&w.store, g, "clock jump");
    }
    let current = log
        .lines()
        .into_iter()
        .filter(|l| l["fields"]["message"] == "current" || l["message"] == "current")
        .count();
    assert!(current >= certs.len(), "{current}");
    agent.shutdown().await;
}
