//! One certificate observed in two stores (two services, two folders), against the
//! emulator: each store is its own observed certificate in the status, the gate and reloads
//! (issue 16.4).

mod agent_support;

use agent_support::*;
use akv_sync_actors::{State, certificate_id};
use std::time::Duration;

fn two_stores(stores: &[&std::path::Path]) -> akv_sync_config::Settings {
    let certs: Vec<serde_json::Value> = stores
        .iter()
        .map(|s| {
            serde_json::json!({
                "url": url("alpha", "web"),
                "certificateStoreLocation": s.display().to_string(),
            })
        })
        .collect();
    let json = serde_json::json!({ "secretsManagementSettings": {
        "pollingIntervalInS": "3600",
        "requireInitialSync": true,
        "observedCertificates": certs,
    }});
    akv_sync_config::parse(&json.to_string())
        .unwrap_or_else(|e| panic!("test settings invalid: {e:?}"))
        .settings
}

#[tokio::test(start_paused = true)]
async fn one_certificate_in_two_stores_is_installed_and_reported_in_each() {
    let w = World::start().await;
    w.create(&[("alpha", "web")]);
    let (a, b) = (w.dir.path().join("app1"), w.dir.path().join("app2"));
    let settings = two_stores(&[&a, &b]);
    let (probe, _events) = probe();
    let agent = w.start_agent(&settings, &probe);
    let status = wait_state(&agent, State::Success).await;
    assert!(status.message.contains("2 of 2"), "{}", status.message);
    // Success means both stores hold the certificate.
    for store in [&a, &b] {
        let link = store.join("alpha.web");
        assert!(link.exists(), "{} missing", link.display());
        assert_full_chain(&link);
    }
    assert_eq!(
        std::fs::read_link(a.join("alpha.web")).unwrap(),
        std::fs::read_link(b.join("alpha.web")).unwrap()
    );

    // A reload that drops the second store: the first is still counted and polled.
    let kept = settings.certificates[0].clone();
    let dropped = certificate_id(&settings.certificates[1]);
    let summary = agent.reload(two_stores(&[&a])).await.unwrap();
    assert_eq!(summary.stopped, std::slice::from_ref(&dropped));
    assert_eq!(summary.kept, 1);
    let mut rx = agent.gate().subscribe();
    let view = tokio::time::timeout(
        Duration::from_secs(120),
        rx.wait_for(|v| !v.certificates.contains_key(&dropped)),
    )
    .await
    .expect("the dropped store leaves the gate")
    .unwrap()
    .clone();
    assert!(view.certificates.contains_key(&certificate_id(&kept)));
    assert!(
        view.status.message.contains("1 of 1"),
        "{}",
        view.status.message
    );
    agent.shutdown().await;
}
