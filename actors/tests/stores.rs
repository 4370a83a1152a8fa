//! One certificate observed in several stores (two services, two folders): each store is its
//! own observed certificate in the gate, the status and reloads (issue 16.4).

mod fakes;

use std::path::PathBuf;
use std::time::Duration;

use akv_sync_actors::*;
use fakes::*;

fn cert_at(vault: &str, name: &str, store: &str) -> akv_sync_config::ObservedCertificate {
    let mut c = cert(vault, name);
    c.store = PathBuf::from(store);
    c
}

/// Fail rather than hang: a day of paused time is far beyond any schedule here.
async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(86_400), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn wait_state(agent: &Agent, state: State) -> Status {
    let mut rx = agent.gate().subscribe();
    within(
        &format!("{state:?}"),
        rx.wait_for(|v| v.status.state == state),
    )
    .await
    .unwrap()
    .status
    .clone()
}

#[tokio::test(start_paused = true)]
async fn one_certificate_in_two_stores_counts_twice_and_lands_in_both() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    let certs = vec![cert_at("v", "c", "/srv/a"), cert_at("v", "c", "/srv/b")];
    let agent = Agent::start(&settings(certs, true), w.ports());
    let status = wait_state(&agent, State::Success).await;
    assert!(status.message.contains("2 of 2"), "{}", status.message);
    assert_eq!(
        w.store.current_in("/srv/a", "v", "c").as_deref(),
        Some("one")
    );
    assert_eq!(
        w.store.current_in("/srv/b", "v", "c").as_deref(),
        Some("one")
    );
    assert_eq!(agent.gate().view().certificates.len(), 2);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn success_waits_until_the_second_store_is_written() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    *w.store.failing_store.lock().unwrap() = Some(("/srv/b".into(), 3, InstallFailure::Store));
    let certs = vec![cert_at("v", "c", "/srv/a"), cert_at("v", "c", "/srv/b")];
    let agent = Agent::start(&settings(certs, true), w.ports());
    let mut rx = agent.gate().subscribe();
    // Until /srv/b holds the certificate, the gate must not say success.
    loop {
        let view = rx.borrow_and_update().clone();
        if view.status.state == State::Success {
            assert_eq!(
                w.store.current_in("/srv/b", "v", "c").as_deref(),
                Some("one"),
                "success reported before the second store was written: {}",
                view.status.message
            );
            break;
        }
        within("a status change", rx.changed()).await.unwrap();
    }
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_in_one_store_names_that_store() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    *w.store.failing_store.lock().unwrap() =
        Some(("/srv/b".into(), u32::MAX, InstallFailure::Store));
    let certs = vec![cert_at("v", "c", "/srv/a"), cert_at("v", "c", "/srv/b")];
    let agent = Agent::start(&settings(certs, true), w.ports());
    let status = wait_state(&agent, State::Error).await;
    let failed: Vec<&str> = status.failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        failed,
        [certificate_id(&cert_at("v", "c", "/srv/b")).as_str()]
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_drops_one_store_keeps_the_other() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    let a = cert_at("v", "c", "/srv/a");
    let b = cert_at("v", "c", "/srv/b");
    let agent = Agent::start(&settings(vec![a.clone(), b], true), w.ports());
    wait_state(&agent, State::Success).await;
    let summary = agent.reload(settings(vec![a.clone()], true)).await.unwrap();
    let dropped = certificate_id(&cert_at("v", "c", "/srv/b"));
    assert_eq!(summary.stopped, std::slice::from_ref(&dropped));
    assert_eq!(summary.kept, 1);
    let mut rx = agent.gate().subscribe();
    let view = within(
        "the dropped store to leave the gate",
        rx.wait_for(|v| !v.certificates.contains_key(&dropped)),
    )
    .await
    .unwrap()
    .clone();
    assert!(view.certificates.contains_key(&certificate_id(&a)));
    assert!(
        view.status.message.contains("1 of 1"),
        "{}",
        view.status.message
    );
    // The remaining store keeps being polled and updated.
    w.vault.put("v", "c", "two");
    tokio::time::sleep(Duration::from_secs(3970)).await;
    assert_eq!(
        w.store.current_in("/srv/a", "v", "c").as_deref(),
        Some("two")
    );
    assert_eq!(
        w.store.current_in("/srv/b", "v", "c").as_deref(),
        Some("one")
    );
    agent.shutdown().await;
}

/// A refusal (the settings or the host must change first: unknown user, unsafe path) fails
/// the initial sync at once; a disk error is retried. Both as typed causes, not messages.
#[tokio::test(start_paused = true)]
async fn a_refused_install_fails_the_first_sync_at_once_and_a_disk_error_is_retried() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    *w.store.failing_store.lock().unwrap() = Some(("/srv/b".into(), 2, InstallFailure::Store));
    let certs = vec![cert_at("v", "c", "/srv/a"), cert_at("v", "c", "/srv/b")];
    let results = run_once(&settings(certs, true), w.ports(), 3, |_| {}).await;
    assert!(
        results.iter().all(|r| r.result.is_ok()),
        "retried to success"
    );
    assert_eq!(
        w.store.installs.load(std::sync::atomic::Ordering::SeqCst),
        4
    );

    let w = World::new();
    w.vault.put("v", "c", "one");
    *w.store.failing_store.lock().unwrap() =
        Some(("/srv/b".into(), u32::MAX, InstallFailure::Refused));
    let certs = vec![cert_at("v", "c", "/srv/a"), cert_at("v", "c", "/srv/b")];
    let results = run_once(&settings(certs, true), w.ports(), 3, |_| {}).await;
    let b = results
        .iter()
        .find(|r| r.id == certificate_id(&cert_at("v", "c", "/srv/b")))
        .unwrap();
    let err = b.result.as_ref().unwrap_err();
    assert_eq!(err.cause, Cause::Install(InstallFailure::Refused));
    assert!(err.is_fatal());
    assert_eq!(
        w.store.installs.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one install into each store: the refusal was not retried"
    );
}
