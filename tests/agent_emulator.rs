//! The agent end to end against the emulator: real TLS, real identity flow, real files.

mod agent_support;

use std::os::unix::fs::PermissionsExt;

use agent_support::*;
use akv_sync_actors::{CheckOutcome, InstallReport, State};
use akv_sync_emulator::{Fault, FaultAction, FaultTarget, IdentityRef, RateLimit};
use serde_json::json;

#[tokio::test]
async fn full_sync_of_several_vaults_and_clouds() {
    let w = World::start().await;
    w.create(&[("alpha", "web"), ("alpha", "api"), ("beta", "portal")]);
    let cn = w.emulator.control();
    cn.create_certificate(
        "gamma",
        "site",
        ec(akv_sync_emulator::generator::Format::Pkcs12, 3),
    )
    .unwrap();
    let urls = vec![
        url("alpha", "web"),
        url("alpha", "api"),
        url("beta", "portal"),
        "https://gamma.vault.azure.cn/secrets/site".to_owned(),
    ];
    let (probe, _events) = probe();
    let agent = w.start_agent(&w.settings(&urls, json!({})), &probe);
    let status = wait_state(&agent, State::Success).await;
    assert!(status.message.contains("4 of 4"), "{}", status.message);
    for (vault, name) in [
        ("alpha", "web"),
        ("alpha", "api"),
        ("beta", "portal"),
        ("gamma", "site"),
    ] {
        let version = w
            .installed(vault, name)
            .unwrap_or_else(|| panic!("{vault}/{name} not installed"));
        assert_eq!(Some(version.clone()), cn.current_version(vault, name));
        let file = w.store.join(format!("{vault}.{name}.{version}"));
        assert_full_chain(&file);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        std::fs::metadata(&w.store).unwrap().permissions().mode() & 0o777,
        0o700
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_rotation_is_picked_up_by_the_next_poll() {
    let w = World::start().await;
    let v1 = w.create(&[("alpha", "web")]).remove(0);
    let (probe, mut events) = probe();
    let agent = w.start_agent(
        &w.settings(&[url("alpha", "web")], json!({"pollingIntervalInS": "1"})),
        &probe,
    );
    wait_state(&agent, State::Success).await;
    assert_eq!(w.installed("alpha", "web"), Some(v1.clone()));
    // Forget the checks of the initial sync.
    while events.checks.try_recv().is_ok() {}
    let v2 = w.emulator.control().rotate("alpha", "web").unwrap();
    // The first check after the rotation installs it: within one polling interval.
    let outcome = wait_check(&mut events, "alpha/web", |_| true).await;
    let outcome = match outcome {
        // A check that was already in flight when we rotated may still see v1.
        CheckOutcome::Current { .. } => wait_check(&mut events, "alpha/web", |_| true).await,
        o => o,
    };
    match outcome {
        CheckOutcome::Updated {
            version,
            report: InstallReport::Installed { previous_version },
        } => {
            assert_eq!(version, v2);
            assert_eq!(previous_version, Some(v1.clone()));
        }
        other => panic!("expected the new version to be installed, got {other:?}"),
    }
    assert_eq!(w.installed("alpha", "web"), Some(v2.clone()));
    // The earlier version stays on disk.
    assert!(w.store.join(format!("alpha.web.{v1}")).exists());
    agent.shutdown().await;
}

/// Each fault: the rotated version cannot be fetched, the last good files stay, and once the
/// fault clears the new version is installed.
#[tokio::test]
async fn faults_leave_the_last_good_files_and_recover() {
    let vault_fault = |action: FaultAction| Fault::new(FaultTarget::Vault, "/secrets/*", action);
    let cases: Vec<(&str, Option<Fault>)> = vec![
        ("403 after a role removal", None),
        (
            "404",
            Some(vault_fault(FaultAction::Status {
                status: 404,
                body: None,
                retry_after: None,
            })),
        ),
        (
            "429 with Retry-After",
            Some(vault_fault(FaultAction::Status {
                status: 429,
                body: None,
                retry_after: Some(1),
            })),
        ),
        (
            "429 without Retry-After",
            Some(vault_fault(FaultAction::Status {
                status: 429,
                body: None,
                retry_after: None,
            })),
        ),
        (
            "500",
            Some(vault_fault(FaultAction::Status {
                status: 500,
                body: None,
                retry_after: None,
            })),
        ),
        (
            "503",
            Some(vault_fault(FaultAction::Status {
                status: 503,
                body: None,
                retry_after: None,
            })),
        ),
        (
            "timeout",
            Some(vault_fault(FaultAction::Delay { millis: 5_000 })),
        ),
        ("connection reset", Some(vault_fault(FaultAction::Reset))),
        ("garbage body", Some(vault_fault(FaultAction::GarbageBody))),
        (
            "truncated body",
            Some(vault_fault(FaultAction::TruncatedBody)),
        ),
    ];
    for (what, fault) in cases {
        let w = World::start().await;
        let v1 = w.create(&[("alpha", "web")]).remove(0);
        let (probe, mut events) = probe();
        let agent = w.start_agent(
            &w.settings(&[url("alpha", "web")], json!({"pollingIntervalInS": "1"})),
            &probe,
        );
        wait_state(&agent, State::Success).await;
        let good = std::fs::read(w.store.join(format!("alpha.web.{v1}"))).unwrap();
        let control = w.emulator.control();
        let system = IdentityRef::SystemAssigned;
        match &fault {
            Some(f) => control.inject_fault(f.clone()),
            None => control.revoke("alpha", &system),
        }
        let v2 = control.rotate("alpha", "web").unwrap();
        let failed = wait_check(&mut events, "alpha/web", |o| {
            matches!(o, CheckOutcome::Failed { .. })
        })
        .await;
        if let CheckOutcome::Failed { error, .. } = &failed {
            assert!(!error.is_empty(), "{what}");
            if fault.is_none() {
                assert!(error.contains("Key Vault Secrets User"), "{what}: {error}");
            }
        }
        assert_eq!(
            w.installed("alpha", "web"),
            Some(v1.clone()),
            "{what}: the link stays"
        );
        assert_eq!(
            std::fs::read(w.store.join(format!("alpha.web.{v1}"))).unwrap(),
            good,
            "{what}: the file stays"
        );
        control.clear_faults();
        control.grant("alpha", &system);
        wait_check(
            &mut events,
            "alpha/web",
            |o| matches!(o, CheckOutcome::Updated { version, .. } if *version == v2),
        )
        .await;
        assert_eq!(w.installed("alpha", "web"), Some(v2), "{what}: recovered");
        agent.shutdown().await;
    }
}

#[tokio::test]
async fn a_rate_limited_vault_is_paused_and_every_certificate_still_arrives() {
    let w = World::start().await;
    let names: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| ("alpha", n.as_str())).collect();
    w.create(&pairs);
    w.emulator.control().set_rate_limit(
        "alpha",
        Some(RateLimit {
            per10s: 10,
            retry_after: Some(1),
        }),
    );
    let urls: Vec<String> = names.iter().map(|n| url("alpha", n)).collect();
    let (probe, _events) = probe();
    let agent = w.start_agent(&w.settings(&urls, json!({})), &probe);
    wait_state(&agent, State::Success).await;
    let counters = w.emulator.control().counters();
    assert!(
        counters.vault_requests("alpha", Some(429)) > 0,
        "the limit was hit"
    );
    for n in &names {
        assert!(w.installed("alpha", n).is_some(), "{n}");
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn a_token_shared_by_a_thousand_watchers_is_requested_once() {
    let w = World::start().await;
    let control = w.emulator.control();
    // One real certificate served under 1,000 names (generating 1,000 keys would dominate).
    let generated =
        akv_sync_emulator::generator::generate(&ec(akv_sync_emulator::generator::Format::Pem, 2))
            .unwrap();
    let pem = akv_sync_emulator::generator::to_pem(&generated);
    let urls: Vec<String> = (0..1000)
        .map(|i| {
            let name = format!("c{i}");
            control
                .set_raw_secret("fleet", &name, &pem, "application/x-pem-file")
                .unwrap();
            url("fleet", &name)
        })
        .collect();
    let (probe, _events) = probe();
    let agent = w.start_agent(&w.settings(&urls, json!({})), &probe);
    let status = wait_state(&agent, State::Success).await;
    assert!(
        status.message.contains("1000 of 1000"),
        "{}",
        status.message
    );
    let counters = control.counters();
    assert_eq!(
        counters.tokens_for(&IdentityRef::SystemAssigned),
        1,
        "one token for 1,000 watchers"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn bad_material_is_refused_and_the_last_good_version_stays() {
    let w = World::start().await;
    let v1 = w.create(&[("alpha", "web")]).remove(0);
    let (probe, mut events) = probe();
    let agent = w.start_agent(
        &w.settings(&[url("alpha", "web")], json!({"pollingIntervalInS": "1"})),
        &probe,
    );
    wait_state(&agent, State::Success).await;
    let control = w.emulator.control();
    for (value, content_type) in [
        ("not base64 at all!", "application/x-pkcs12"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "application/x-pem-file",
        ),
        ("hello", "text/plain"),
    ] {
        control
            .set_raw_secret("alpha", "web", value, content_type)
            .unwrap();
        let failed = wait_check(&mut events, "alpha/web", |o| {
            matches!(o, CheckOutcome::Failed { .. })
        })
        .await;
        if let CheckOutcome::Failed { error, .. } = failed {
            assert!(
                error.contains("alpha/web"),
                "the error names the certificate: {error}"
            );
            assert!(
                !error.contains(value),
                "the error does not echo the secret: {error}"
            );
        }
        assert_eq!(w.installed("alpha", "web"), Some(v1.clone()));
        assert_full_chain(&w.store.join(format!("alpha.web.{v1}")));
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn extra_outputs_are_written_in_certbots_layout() {
    let w = World::start().await;
    let control = w.emulator.control();
    control
        .create_certificate(
            "alpha",
            "web",
            ec(akv_sync_emulator::generator::Format::Pkcs12, 3),
        )
        .unwrap();
    let settings_text = serde_json::json!({
        "secretsManagementSettings": {
            "requireInitialSync": true,
            "observedCertificates": [{
                "url": url("alpha", "web"),
                "certificateStoreLocation": w.store.display().to_string(),
                "akvSync": { "outputs": { "cert": "web-cert.pem", "chain": "web-chain.pem", "fullchain": "web-fullchain.pem", "privkey": "web-privkey.pem" } }
            }]
        }
    })
    .to_string();
    let settings = akv_sync_config::parse(&settings_text).unwrap().settings;
    let (probe, _events) = probe();
    let agent = w.start_agent(&settings, &probe);
    wait_state(&agent, State::Success).await;
    let read = |n: &str| std::fs::read_to_string(w.store.join(n)).unwrap();
    let mode = |n: &str| {
        std::fs::metadata(w.store.join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let (cert, chain, fullchain, key) = (
        read("web-cert.pem"),
        read("web-chain.pem"),
        read("web-fullchain.pem"),
        read("web-privkey.pem"),
    );
    assert_eq!(pem::parse_many(&cert).unwrap().len(), 1);
    assert_eq!(
        pem::parse_many(&chain).unwrap().len(),
        2,
        "intermediate and root"
    );
    assert_eq!(fullchain, format!("{cert}{chain}"));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        read("alpha.web"),
        format!("{fullchain}{key}"),
        "the combined file is the full chain then the key"
    );
    assert_eq!(mode("web-privkey.pem"), 0o600);
    assert_eq!(mode("web-cert.pem"), 0o644);
    agent.shutdown().await;
}

/// Azure Arc: the agent answers HIMDS's key-file challenge (the key file lies in
/// /var/opt/azcmagent/tokens, as on a real Arc machine; the tests run as root).
#[tokio::test]
async fn an_arc_machine_gets_its_token_through_the_key_file_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = akv_sync_emulator::start(akv_sync_emulator::EmulatorOptions {
        state_dir: dir.path().join("emulator"),
        arc_token_dir: std::path::PathBuf::from(akv_sync::azure::identity::ARC_TOKEN_DIR),
        ..Default::default()
    })
    .await
    .unwrap();
    let control = emulator.control();
    control
        .create_certificate(
            "alpha",
            "web",
            ec(akv_sync_emulator::generator::Format::Pem, 2),
        )
        .unwrap();
    let store = dir.path().join("store");
    let text = serde_json::json!({
        "secretsManagementSettings": {
            "requireInitialSync": true,
            "observedCertificates": [{ "url": url("alpha", "web"), "certificateStoreLocation": store.display().to_string() }]
        },
        "authenticationSettings": { "msiEndpoint": "http://localhost:40342/metadata/identity" }
    })
    .to_string();
    let settings = akv_sync_config::parse(&text).unwrap().settings;
    assert!(matches!(
        settings.identity,
        akv_sync_config::Identity::Arc { .. }
    ));
    let (probe, _events) = probe();
    let net = akv_sync::azure::net::net_for_emulator(emulator.vault_addr, &emulator.ca_pem);
    let ports = akv_sync::cli::ports::ports_with(
        &settings,
        &net,
        Some(emulator.arc_endpoint.clone()),
        probe.status.clone(),
        probe.observer.clone(),
    )
    .unwrap();
    let agent = akv_sync_actors::Agent::start(&settings, ports);
    wait_state(&agent, State::Success).await;
    assert_eq!(control.counters().tokens_for(&IdentityRef::Arc), 1);
    assert!(std::fs::read_link(store.join("alpha.web")).is_ok());
    agent.shutdown().await;
}

/// `msiClientId` holding a user-assigned identity's resource id: the agent asks IMDS with
/// `msi_res_id` (IMDS here knows the identity by resource id only and the VM has no
/// system-assigned identity) and installs the certificate.
#[tokio::test]
async fn a_resource_id_in_msi_client_id_is_sent_as_msi_res_id() {
    const RESOURCE_ID: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-web/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-web";
    let dir = tempfile::tempdir().unwrap();
    let emulator = akv_sync_emulator::start(akv_sync_emulator::EmulatorOptions {
        state_dir: dir.path().join("emulator"),
        system_assigned: false,
        user_assigned: vec![RESOURCE_ID.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let control = emulator.control();
    control
        .create_certificate(
            "alpha",
            "web",
            ec(akv_sync_emulator::generator::Format::Pem, 2),
        )
        .unwrap();
    let store = dir.path().join("store");
    let text = serde_json::json!({
        "secretsManagementSettings": {
            "requireInitialSync": true,
            "observedCertificates": [{ "url": url("alpha", "web"), "certificateStoreLocation": store.display().to_string() }]
        },
        "authenticationSettings": {
            "msiEndpoint": "http://169.254.169.254/metadata/identity",
            "msiClientId": RESOURCE_ID
        }
    })
    .to_string();
    let parsed = akv_sync_config::parse(&text).unwrap();
    assert_eq!(
        parsed
            .warnings
            .iter()
            .map(|w| w.path.as_str())
            .collect::<Vec<_>>(),
        ["authenticationSettings.msiClientId"]
    );
    let settings = parsed.settings;
    let (probe, _events) = probe();
    let net = akv_sync::azure::net::net_for_emulator(emulator.vault_addr, &emulator.ca_pem);
    let ports = akv_sync::cli::ports::ports_with(
        &settings,
        &net,
        Some(emulator.imds_endpoint.clone()),
        probe.status.clone(),
        probe.observer.clone(),
    )
    .unwrap();
    let agent = akv_sync_actors::Agent::start(&settings, ports);
    wait_state(&agent, State::Success).await;
    // Only a request with `msi_res_id` gets a token for this identity.
    let counters = control.counters();
    assert_eq!(
        counters.tokens_for(&IdentityRef::UserAssignedByResourceId {
            resource_id: RESOURCE_ID.to_owned()
        }),
        1
    );
    assert_eq!(counters.tokens_for(&IdentityRef::SystemAssigned), 0);
    let version = control.current_version("alpha", "web").unwrap();
    let stem = akv_sync_config::layout::stem("alpha", "web");
    assert_eq!(
        std::fs::read_link(store.join(&stem)).unwrap(),
        std::path::Path::new(&akv_sync_config::layout::version_file(&stem, &version))
    );
    agent.shutdown().await;
}
