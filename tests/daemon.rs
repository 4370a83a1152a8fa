//! The `akv-sync run` daemon as a process: signals, hooks, metrics and health, Fluentd, and
//! what its logs never contain.

mod daemon_support;

use std::time::Duration;

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use akv_sync_emulator::{Fault, FaultAction, FaultTarget};
use daemon_support::*;
use nix::sys::signal::Signal;
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

fn create(env: &Env, certs: &[(&str, &str)]) -> Vec<String> {
    let c = env.emulator.control();
    certs
        .iter()
        .enumerate()
        .map(|(i, (v, n))| {
            c.create_certificate(
                v,
                n,
                spec(if i % 2 == 0 {
                    Format::Pkcs12
                } else {
                    Format::Pem
                }),
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn sigterm_stops_the_agent_with_exit_code_zero() {
    let env = Env::start();
    create(&env, &[("alpha", "a")]);
    let settings = env.write_settings("s.json", &[("alpha", "a")], json!({}), json!({}));
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    let (code, lines) = d.stop();
    assert_eq!(code, Some(0));
    assert!(lines.iter().any(|l| l.contains("\"stopped\"")), "{lines:?}");
}

#[test]
fn sighup_starts_and_stops_only_the_changed_certificates() {
    let env = Env::start();
    create(&env, &[("alpha", "a"), ("alpha", "b"), ("alpha", "c")]);
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "a"), ("alpha", "b")],
        json!({}),
        json!({}),
    );
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    assert!(installed(&env.store, "alpha", "a").is_some());
    env.write_settings(
        "s.json",
        &[("alpha", "b"), ("alpha", "c")],
        json!({}),
        json!({}),
    );
    d.signal(Signal::SIGHUP);
    let applied = d.wait_message("settings applied");
    // Ids name the store: one certificate may be observed in several.
    let store = env.store.display();
    assert_eq!(applied["started"], format!("[\"alpha/c in {store}\"]"));
    assert_eq!(applied["stopped"], format!("[\"alpha/a in {store}\"]"));
    assert_eq!(applied["kept"], 1);
    d.wait_line("alpha/c installed", |v| {
        v["message"] == "installed new version" && v["certificate"] == "alpha/c"
    });
    assert!(installed(&env.store, "alpha", "c").is_some());
    // A removed certificate's files stay, as with the original extension.
    assert!(installed(&env.store, "alpha", "a").is_some());
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn a_hook_runs_once_per_change_after_the_files_are_in_place() {
    let env = Env::start();
    create(&env, &[("alpha", "web"), ("alpha", "api")]);
    let out = env.path("hook.out");
    let global_out = env.path("global.out");
    // The hook checks that the link already points at the new file, then records the call.
    let script = format!(
        "test \"$(readlink \"$AKV_SYNC_LINK\")\" = \"$(basename \"$AKV_SYNC_FILE\")\" && test -s \"$AKV_SYNC_FILE\" \
         && echo \"$AKV_SYNC_VAULT/$AKV_SYNC_NAME $AKV_SYNC_VERSION prev=$AKV_SYNC_PREVIOUS_VERSION\" >> {}",
        out.display()
    );
    let global = format!(
        "echo \"$AKV_SYNC_CHANGED_COUNT\" >> {}",
        global_out.display()
    );
    let settings_path = env.path("s.json");
    let settings = json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "1",
            "requireInitialSync": true,
            "observedCertificates": [
                { "url": "https://alpha.vault.azure.net/secrets/web", "certificateStoreLocation": env.store.display().to_string(),
                  "akvSync": { "onChange": { "command": ["sh", "-c", script], "timeoutInS": 10 } } },
                { "url": "https://alpha.vault.azure.net/secrets/api", "certificateStoreLocation": env.store.display().to_string() }
            ]
        },
        "akvSyncSettings": { "onChange": { "command": ["sh", "-c", global] } }
    });
    std::fs::write(&settings_path, settings.to_string()).unwrap();
    let mut d = env.run(&settings_path, &["--log", "debug"]);
    d.wait_status("success");
    d.wait_line("the first certificate hook", |v| {
        v["message"] == "hook ran" && v["hook"] == "certificate"
    });
    let v1 = installed(&env.store, "alpha", "web").unwrap();
    let v2 = env.emulator.control().rotate("alpha", "web").unwrap();
    d.wait_line("the rotation's hook", |v| {
        v["message"] == "hook ran" && v["hook"] == "certificate" && v["changed"] == "alpha/web"
    });
    // Let a few more polls pass: nothing changes, so no hook may run.
    for _ in 0..3 {
        d.wait_line("an unchanged poll", |v| {
            v["message"] == "current" || v["level"] == "INFO"
        });
    }
    let (code, lines) = d.stop();
    assert_eq!(code, Some(0));
    let calls = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        calls,
        format!("alpha/web {v1} prev=\nalpha/web {v2} prev={v1}\n"),
        "{lines:?}"
    );
    let failed = lines.iter().filter(|l| l.contains("hook failed")).count();
    assert_eq!(failed, 0, "{lines:?}");
    // The global hook ran for the first batch and for the rotation: never per poll.
    let global_calls: Vec<String> = std::fs::read_to_string(&global_out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        global_calls.len() >= 2 && global_calls.len() <= 3,
        "{global_calls:?}"
    );
}

#[test]
fn metrics_and_readiness_follow_syncs_and_failures() {
    let env = Env::start();
    create(&env, &[("alpha", "web")]);
    let port = free_port();
    // The first downloads fail 3 times: /readyz must say not ready meanwhile.
    let mut fault = Fault::new(
        FaultTarget::Vault,
        "/secrets/web*",
        FaultAction::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    );
    fault.count = Some(3);
    env.emulator.control().inject_fault(fault);
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        json!({}),
        json!({ "akvSyncSettings": { "metricsAddress": format!("127.0.0.1:{port}") } }),
    );
    let mut d = env.run(&settings, &["--log", "info"]);
    d.wait_message("serving /metrics");
    d.wait_message("first download failed; will retry");
    let (code, body) = scrape(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert_eq!(scrape(port, "/healthz"), (200, "ok\n".to_owned()));
    d.wait_status("success");
    let (code, body) = scrape(port, "/readyz");
    assert_eq!(code, 200, "{body}");
    let (_, m) = scrape(port, "/metrics");
    let expiry = metric(
        &m,
        "akv_sync_certificate_expiry_timestamp_seconds",
        "vault=\"alpha\",name=\"web\"",
    )
    .expect("expiry");
    let file = env.store.join("alpha.web");
    assert_eq!(
        Some(expiry as i64),
        akv_sync::observe::expiry::leaf_not_after(&file)
    );
    assert!(
        metric(
            &m,
            "akv_sync_requests_total",
            "target=\"vault\",status=\"500\""
        )
        .unwrap()
            >= 3.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "akv_sync_requests_total",
            "target=\"vault\",status=\"200\""
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "akv_sync_token_refreshes_total", ""),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "akv_sync_ready", ""), Some(1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            "akv_sync_certificate_consecutive_failures",
            "name=\"web\""
        ),
        Some(0.0)
    );
    // A failure afterwards shows as consecutive failures.
    env.emulator.control().inject_fault(Fault::new(
        FaultTarget::Vault,
        "/secrets/web*",
        FaultAction::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    d.wait_message("check failed");
    let (_, m) = scrape(port, "/metrics");
    assert!(
        metric(
            &m,
            "akv_sync_certificate_consecutive_failures",
            "name=\"web\""
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn logs_reach_fluentd_in_forward_mode() {
    let env = Env::start();
    create(&env, &[("alpha", "web")]);
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        json!({}),
        json!({ "loggingSettings": { "logger": "fluentd", "endpoint": format!("tcp://127.0.0.1:{port}"), "format": "forward", "servicename": "akvvm_service" } }),
    );
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    let (mut conn, _) = receiver.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut records = Vec::new();
    while !records.iter().any(|r: &rmpv::Value| {
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("initial sync done"))
    }) {
        let msg = rmpv::decode::read_value(&mut conn).expect("a Forward message");
        assert_eq!(msg[0].as_str(), Some("akvvm_service"), "tag");
        for entry in msg[1]
            .as_array()
            .expect("Forward mode: an array of entries")
        {
            let rmpv::Value::Ext(0, time) = &entry[0] else {
                panic!("EventTime expected: {entry:?}")
            };
            let secs = u32::from_be_bytes(time[..4].try_into().unwrap()) as u64;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(secs <= now && secs + 600 > now, "time {secs}");
            assert!(entry[1]["level"].is_str());
            records.push(entry[1].clone());
        }
    }
    assert!(records.iter().any(|r| {
        r["message"].as_str() == Some("installed new version")
            && r["vault"].as_str() == Some("alpha")
            && r["name"].as_str() == Some("web")
    }));
    d.stop();
}

#[test]
fn with_fluentd_down_the_agent_keeps_syncing() {
    let env = Env::start();
    create(&env, &[("alpha", "web")]);
    let port = free_port();
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        json!({}),
        json!({ "loggingSettings": { "logger": "fluentd", "endpoint": format!("tcp://127.0.0.1:{port}"), "format": "forward", "servicename": "akvvm_service" } }),
    );
    let mut d = env.run(&settings, &[]);
    d.wait_status("success");
    let v2 = env.emulator.control().rotate("alpha", "web").unwrap();
    d.wait_line("the rotation", |v| {
        v["message"] == "installed new version" && v["version"] == v2
    });
    assert_eq!(installed(&env.store, "alpha", "web"), Some(v2));
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn no_log_holds_a_secret_value_a_key_or_a_token() {
    let env = Env::start();
    create(
        &env,
        &[("alpha", "p12"), ("alpha", "pem"), ("beta", "chain")],
    );
    let control = env.emulator.control();
    let log_dir = env.path("logs");
    let settings = env.write_settings(
        "s.json",
        &[
            ("alpha", "p12"),
            ("alpha", "pem"),
            ("beta", "chain"),
            ("beta", "bad"),
        ],
        json!({}),
        json!({}),
    );
    // A secret whose value is a key with no certificate: it must be refused without echoing it.
    let generated = akv_sync_emulator::generator::generate(&spec(Format::Pem)).unwrap();
    let pem = akv_sync_emulator::generator::to_pem(&generated);
    let key_only: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .next()
        .unwrap()
        .to_owned();
    control
        .set_raw_secret("beta", "bad", &key_only, "application/x-pem-file")
        .unwrap();
    let mut d = env.run(
        &settings,
        &["--log", "trace", "--log-dir", log_dir.to_str().unwrap()],
    );
    d.wait_line("beta/bad refused", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("will retry"))
            && v["certificate"] == "beta/bad"
    });
    control.rotate("alpha", "p12").unwrap();
    d.wait_line("the rotation", |v| {
        v["message"] == "installed new version" && v["certificate"] == "alpha/p12"
    });
    let (_, lines) = d.stop();
    let mut logs = lines.join("\n");
    for entry in std::fs::read_dir(&log_dir).unwrap() {
        logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(logs.len() > 1000, "the logs were written");
    let mut needles: Vec<String> = Vec::new();
    for secret in control.served_secrets() {
        // The whole value and every base64 line of it (a PEM key line, a PFX chunk).
        needles.push(secret.clone());
        for line in secret
            .lines()
            .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
        {
            needles.push(line.to_owned());
        }
        if !secret.contains("-----") {
            needles.extend(
                secret
                    .as_bytes()
                    .chunks(64)
                    .filter(|c| c.len() == 64)
                    .map(|c| String::from_utf8_lossy(c).into_owned()),
            );
        }
    }
    needles.extend(control.issued_tokens());
    assert!(needles.len() > 10);
    for n in &needles {
        assert!(
            !logs.contains(n.as_str()),
            "a secret, key or token reached the logs"
        );
    }
    assert!(
        !logs.contains("PRIVATE KEY-----"),
        "a key block reached the logs"
    );
}

#[test]
fn once_installs_and_reports_each_certificate_and_status_shows_them() {
    let env = Env::start();
    create(&env, &[("alpha", "web"), ("alpha", "api")]);
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web"), ("alpha", "api"), ("alpha", "missing")],
        json!({}),
        json!({}),
    );
    let out = env
        .command(&[
            "once",
            "--settings",
            settings.to_str().unwrap(),
            "--attempts",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one certificate is missing: {stdout}"
    );
    assert!(
        stdout.starts_with("3 certificate(s): 2 installed, 0 already current, 1 failed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAILED     alpha/missing") && stdout.contains("not found"),
        "{stdout}"
    );
    let control = env.emulator.control();
    for name in ["web", "api"] {
        assert_eq!(
            installed(&env.store, "alpha", name),
            control.current_version("alpha", name),
            "{name}"
        );
    }

    // A second pass finds them current and writes nothing.
    let settings = env.write_settings(
        "s2.json",
        &[("alpha", "web"), ("alpha", "api")],
        json!({}),
        json!({}),
    );
    let before = std::fs::metadata(env.store.join("alpha.web")).unwrap();
    let out = env
        .command(&["once", "--settings", settings.to_str().unwrap(), "--list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("2 certificate(s): 0 installed, 2 already current, 0 failed\n"),
        "{stdout}"
    );
    assert!(stdout.contains("current    alpha/web"), "{stdout}");
    assert!(stdout.contains("current    alpha/api"), "{stdout}");
    use std::os::unix::fs::MetadataExt;
    let after = std::fs::metadata(env.store.join("alpha.web")).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    let out = env
        .command(&["status", "--settings", settings.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = env.emulator.control();
    for (i, name) in ["web", "api"].iter().enumerate() {
        assert_eq!(rows[i]["certificate"], format!("alpha/{name}"));
        assert_eq!(rows[i]["installed"], true);
        assert_eq!(
            rows[i]["version"].as_str(),
            versions.current_version("alpha", name).as_deref()
        );
        assert!(rows[i]["days_left"].as_i64().unwrap() > 300);
    }
}

#[test]
fn once_beside_a_live_writer_keeps_its_temporaries_and_removes_a_dead_ones() {
    let env = Env::start();
    create(&env, &[("alpha", "web")]);
    let settings = env.write_settings("s.json", &[("alpha", "web")], json!({}), json!({}));
    std::fs::create_dir_all(&env.store).unwrap();
    // A writer still running (as a daemon beside this `once`) and one that has ended.
    let mut live = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let prefix = akv_sync::store::TEMP_PREFIX;
    let in_flight = env.store.join(format!("{prefix}{}.7", live.id()));
    let left_over = env.store.join(format!("{prefix}{dead_pid}.7"));
    std::fs::write(&in_flight, b"being written").unwrap();
    std::fs::write(&left_over, b"half a key").unwrap();

    let out = env
        .command(&["once", "--settings", settings.to_str().unwrap()])
        .output()
        .unwrap();
    let in_flight_kept = in_flight.exists();
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(in_flight_kept, "a live writer's temporary was removed");
    assert!(!left_over.exists());
}

#[test]
fn a_certificate_near_expiry_with_nothing_newer_raises_a_warning_and_a_metric() {
    let env = Env::start();
    let spec = CertSpec {
        validity_days: 5,
        ..spec(Format::Pem)
    };
    env.emulator
        .control()
        .create_certificate("alpha", "soon", spec)
        .unwrap();
    let port = free_port();
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "soon")],
        json!({}),
        json!({ "akvSyncSettings": { "metricsAddress": format!("127.0.0.1:{port}"), "expiryWarningDays": 14 } }),
    );
    let mut d = env.run(&settings, &[]);
    let warning = d.wait_line("the expiry warning", |v| {
        v["level"] == "WARN"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("expires within 14 days"))
    });
    assert_eq!(warning["vault"], "alpha");
    assert_eq!(warning["name"], "soon");
    assert!(warning["days_left"].as_i64().unwrap() <= 5);
    let (_, m) = scrape(port, "/metrics");
    assert_eq!(
        metric(&m, "akv_sync_certificate_expiring", "name=\"soon\""),
        Some(1.0),
        "{m}"
    );
    d.stop();
}

#[test]
fn a_metrics_address_in_use_does_not_stop_syncing_and_is_served_once_free() {
    let env = Env::start();
    create(&env, &[("alpha", "web")]);
    let port = free_port();
    let blocker = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        json!({}),
        json!({ "akvSyncSettings": { "metricsAddress": format!("127.0.0.1:{port}") } }),
    );
    let mut d = env.run(&settings, &["--log", "info"]);
    d.wait_message("metrics address unavailable");
    d.wait_status("success");
    assert!(installed(&env.store, "alpha", "web").is_some());
    drop(blocker);
    d.wait_message("serving /metrics");
    // /healthz could not answer while the address was taken; now it tells what happened.
    let (status, body) = scrape(port, "/healthz");
    assert_eq!(status, 200);
    assert!(body.starts_with("ok\n"), "{body}");
    assert!(
        body.contains(&format!("metrics address 127.0.0.1:{port} was unavailable"))
            && body.contains("in use"),
        "{body}"
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
}

/// SPEC §1.3: a mistake inside one observed certificate fails that certificate alone; the
/// others sync, and the status is `error` naming it once they are done. Fixed settings
/// (SIGHUP) bring `success`.
#[test]
fn a_certificate_with_a_mistake_of_its_own_fails_alone_and_the_others_sync() {
    let env = Env::start();
    create(&env, &[("alpha", "a"), ("alpha", "b")]);
    let store = env.store.display().to_string();
    let with_mistake = |file: &str, bad: bool| {
        let mut observed = vec![json!({
            "url": "https://alpha.vault.azure.net/secrets/a",
            "certificateStoreLocation": store,
        })];
        if bad {
            observed.push(json!({
                "url": "http://alpha.vault.azure.net/secrets/plain",
                "certificateStoreLocation": store,
            }));
        }
        observed.push(json!({
            "url": "https://alpha.vault.azure.net/secrets/b",
            "certificateStoreLocation": store,
        }));
        env.write_settings(
            file,
            &[],
            json!({ "observedCertificates": observed }),
            json!({}),
        )
    };
    let settings = with_mistake("s.json", true);

    // validate still refuses the file (exit 2) and says the others would sync.
    let out = env
        .command(&["validate", "--settings", settings.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("observedCertificates[1].url")
            && stderr.contains("2 certificate(s) accepted"),
        "{stderr}"
    );

    let mut d = env.run(&settings, &[]);
    let status = d.wait_status("error");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("secretsManagementSettings.observedCertificates[1]: url:")
            && message.contains("1 of 3 certificate(s) refused"),
        "{message}"
    );
    let success_seen = d.seen.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["status"] == "success")
    });
    assert!(!success_seen, "never success while one is refused");
    // The others synced.
    assert!(installed(&env.store, "alpha", "a").is_some());
    assert!(installed(&env.store, "alpha", "b").is_some());

    // The mistake fixed: success.
    with_mistake("s.json", false);
    d.signal(Signal::SIGHUP);
    d.wait_status("success");
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));

    // `once` tries the others and counts the refused one as failed.
    let settings = with_mistake("s2.json", true);
    let out = env
        .command(&["once", "--settings", settings.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "FAILED     secretsManagementSettings.observedCertificates[1]  refused by the settings"
        ) && stdout.starts_with("3 certificate(s): 0 installed, 2 already current, 1 failed\n"),
        "{stdout}"
    );
}
