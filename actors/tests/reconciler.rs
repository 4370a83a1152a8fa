//! The reconciler against in-memory fakes, in paused time.

mod fakes;

use std::sync::atomic::Ordering;
use std::time::Duration;

use akv_sync_actors::*;
use akv_sync_config::Cloud;
use fakes::*;

async fn wait_state(agent: &Agent, state: State) -> Status {
    let mut rx = agent.gate().subscribe();
    rx.wait_for(|v| v.status.state == state)
        .await
        .unwrap()
        .status
        .clone()
}

#[tokio::test(start_paused = true)]
async fn full_sync_of_several_vaults_and_clouds() {
    let w = World::new();
    let mut certs = vec![];
    for (vault, cloud) in [
        ("v1", Cloud::Public),
        ("v2", Cloud::Public),
        ("v3", Cloud::China),
    ] {
        for n in 0..5 {
            let name = format!("c{n}");
            w.vault.put(vault, &name, &format!("{vault}{name}a"));
            certs.push(cert_in(vault, &name, cloud, None));
        }
    }
    let agent = Agent::start(&settings(certs, true), w.ports());
    let status = wait_state(&agent, State::Success).await;
    assert!(status.message.contains("15 of 15"), "{}", status.message);
    assert_eq!(w.store.current("v3", "c4").as_deref(), Some("v3c4a"));
    // One token per audience: public and China.
    assert_eq!(w.identity.fetches.load(Ordering::SeqCst), 2);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_token_shared_by_a_thousand_watchers_is_requested_once() {
    let w = World::new();
    let certs: Vec<_> = (0..1000)
        .map(|n| {
            let name = format!("c{n}");
            w.vault.put("big", &name, "v1");
            cert("big", &name)
        })
        .collect();
    let agent = Agent::start(&settings(certs, true), w.ports());
    wait_state(&agent, State::Success).await;
    assert_eq!(w.identity.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(w.store.writes.load(Ordering::SeqCst), 1000);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rotation_is_picked_up_within_one_interval() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    wait_state(&agent, State::Success).await;
    let rotated_at = tokio::time::Instant::now();
    w.vault.put("v", "c", "two");
    while w.store.current("v", "c").as_deref() != Some("two") {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Interval 3600 s, jitter 10 %.
    assert!(
        rotated_at.elapsed() <= Duration::from_secs(3960),
        "{:?}",
        rotated_at.elapsed()
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_poll_writes_nothing() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    wait_state(&agent, State::Success).await;
    let gets = w.vault.gets.load(Ordering::SeqCst);
    let installs = w.store.installs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3 * 3960)).await;
    assert!(
        w.vault.gets.load(Ordering::SeqCst) >= gets + 2,
        "it kept polling"
    );
    assert_eq!(
        w.store.installs.load(Ordering::SeqCst),
        installs,
        "nothing installed"
    );
    assert_eq!(w.store.writes.load(Ordering::SeqCst), 1);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_poll_skips_the_disk_while_the_store_stamp_holds() {
    let w = World::new();
    *w.store.stamp.lock().unwrap() = Some(1);
    w.vault.put("v", "c", "one");
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    wait_state(&agent, State::Success).await;
    let reads = w.store.reads.load(Ordering::SeqCst);
    let gets = w.vault.gets.load(Ordering::SeqCst);
    // Three polls (at most 3,960 s apart, +1 s for the grid): the first after the install
    // reads the disk once; the others trust it.
    tokio::time::sleep(Duration::from_secs(3 * 3970)).await;
    assert!(
        w.vault.gets.load(Ordering::SeqCst) >= gets + 3,
        "it kept polling"
    );
    assert_eq!(w.store.reads.load(Ordering::SeqCst), reads + 1);

    // Someone removes the files: the folder's stamp moves, the next poll reads the disk,
    // finds nothing and installs the version again.
    w.store.files.lock().unwrap().clear();
    *w.store.stamp.lock().unwrap() = Some(2);
    tokio::time::sleep(Duration::from_secs(3960 + 400)).await;
    assert_eq!(w.store.current("v", "c").as_deref(), Some("one"));
    assert_eq!(w.store.writes.load(Ordering::SeqCst), 2);

    // Without a stamp every poll reads the disk.
    *w.store.stamp.lock().unwrap() = None;
    let reads = w.store.reads.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2 * 3960 + 400)).await;
    assert!(w.store.reads.load(Ordering::SeqCst) >= reads + 2);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn faults_leave_the_last_good_version_and_recover() {
    for class in [
        ErrorClass::Forbidden,
        ErrorClass::NotFound,
        ErrorClass::Throttled {
            retry_after: Some(Duration::from_secs(30)),
        },
        ErrorClass::Throttled { retry_after: None },
        ErrorClass::Transient,
    ] {
        let w = World::new();
        w.vault.put("v", "c", "one");
        let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
        wait_state(&agent, State::Success).await;
        w.vault.put("v", "c", "two");
        w.vault.fail("v", "c", class, 3);
        tokio::time::sleep(Duration::from_secs(3960)).await;
        // While failing, the last good version stays.
        while w
            .vault
            .faults
            .lock()
            .unwrap()
            .values()
            .any(|q| !q.is_empty())
        {
            assert_eq!(
                w.store.current("v", "c").as_deref(),
                Some("one"),
                "{class:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Retries after a failure come sooner than the interval.
        let recovered_from = tokio::time::Instant::now();
        while w.store.current("v", "c").as_deref() != Some("two") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(
            recovered_from.elapsed() < Duration::from_secs(120),
            "{class:?}"
        );
        agent.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn bad_material_keeps_the_last_good_version() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    wait_state(&agent, State::Success).await;
    *w.store.reject_value.lock().unwrap() = Some("pem-of-bad".into());
    w.vault.put("v", "c", "bad");
    tokio::time::sleep(Duration::from_secs(5 * 3960)).await;
    assert_eq!(w.store.current("v", "c").as_deref(), Some("one"));
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_gate_reports_error_after_twenty_five_attempts() {
    let w = World::new();
    w.vault.put("v", "ok", "one");
    w.vault.fail("v", "denied", ErrorClass::Forbidden, 1000);
    let start = tokio::time::Instant::now();
    let agent = Agent::start(
        &settings(vec![cert("v", "ok"), cert("v", "denied")], true),
        w.ports(),
    );
    let status = wait_state(&agent, State::Error).await;
    // Only v/denied failed (the ids name the store too).
    assert_eq!(status.failed_count, 1);
    assert!(
        status.failures[0].id.starts_with("v/denied in "),
        "{:?}",
        status.failures
    );
    // About 1,202 s of waits, ±20 %.
    let took = start.elapsed();
    assert!(
        took > Duration::from_secs(960) && took < Duration::from_secs(1450),
        "{took:?}"
    );
    let states: Vec<State> = w
        .status
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.state.clone())
        .collect();
    assert!(!states.contains(&State::Success), "{states:?}");
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_gate_reports_success_when_the_fault_clears_in_time() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    w.vault.fail("v", "c", ErrorClass::Forbidden, 20);
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    let status = wait_state(&agent, State::Success).await;
    assert!(status.message.contains("1 of 1"));
    // Progress messages may change while transitioning; the state goes one way only.
    let mut states: Vec<State> = w
        .status
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.state.clone())
        .collect();
    states.dedup();
    assert_eq!(states, [State::Transitioning, State::Success]);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn without_required_sync_success_comes_at_once() {
    let w = World::new();
    w.vault.fail("v", "c", ErrorClass::Forbidden, 1000);
    let agent = Agent::start(&settings(vec![cert("v", "c")], false), w.ports());
    assert_eq!(agent.gate().settled_status().await.state, State::Success);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reload_starts_and_stops_only_what_changed() {
    let w = World::new();
    for n in ["a", "b", "c"] {
        w.vault.put("v", n, "one");
    }
    let agent = Agent::start(
        &settings(vec![cert("v", "a"), cert("v", "b")], true),
        w.ports(),
    );
    wait_state(&agent, State::Success).await;
    // `b` moves from the second place to the first: that alone must not restart it.
    let mut moved = cert("v", "b");
    moved.json_path = "observedCertificates[0]".into();
    let summary = agent
        .reload(settings(vec![moved, cert("v", "c")], true))
        .await
        .unwrap();
    assert_eq!(summary.started, [certificate_id(&cert("v", "c"))]);
    assert_eq!(summary.stopped, [certificate_id(&cert("v", "a"))]);
    assert_eq!(summary.kept, 1);
    let mut rx = agent.gate().subscribe();
    let c = certificate_id(&cert("v", "c"));
    rx.wait_for(|v| v.certificates.get(&c) == Some(&FirstSync::Installed))
        .await
        .unwrap();
    assert!(
        !agent
            .gate()
            .view()
            .certificates
            .contains_key(&certificate_id(&cert("v", "a")))
    );
    // The token was not fetched again.
    assert_eq!(w.identity.fetches.load(Ordering::SeqCst), 1);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pinned_version_is_fetched_once() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    w.vault.put("v", "c", "two");
    let agent = Agent::start(
        &settings(vec![cert_in("v", "c", Cloud::Public, Some("one"))], true),
        w.ports(),
    );
    wait_state(&agent, State::Success).await;
    let gets = w.vault.gets.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5 * 3960)).await;
    assert_eq!(w.vault.gets.load(Ordering::SeqCst), gets);
    assert_eq!(w.store.current("v", "c").as_deref(), Some("one"));
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_refreshed_once_and_the_request_retried() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    w.vault.fail("v", "c", ErrorClass::Unauthorized, 1);
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    let states_before = w.vault.gets.load(Ordering::SeqCst);
    wait_state(&agent, State::Success).await;
    assert_eq!(w.identity.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(w.vault.gets.load(Ordering::SeqCst) - states_before, 2);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn once_reports_each_certificate() {
    let w = World::new();
    w.vault.put("v", "ok", "one");
    let results = run_once(
        &settings(vec![cert("v", "ok"), cert("v", "missing")], false),
        w.ports(),
        3,
        |_| {},
    )
    .await;
    assert_eq!(results.len(), 2);
    assert!(results[0].result.is_ok());
    assert_eq!(
        results[1].result.as_ref().unwrap_err().cause,
        Cause::Vault(ErrorClass::NotFound)
    );
}

#[tokio::test(start_paused = true)]
async fn without_required_sync_a_restart_spreads_first_downloads_over_the_start_window() {
    let w = World::new();
    let certs: Vec<_> = (0..200)
        .map(|n| {
            let name = format!("c{n}");
            // A restart: an older version is on disk already.
            w.store.preinstall("v", &name, "old");
            w.vault.put("v", &name, "one");
            cert("v", &name)
        })
        .collect();
    let start = tokio::time::Instant::now();
    let agent = Agent::start(&settings(certs, false), w.ports());
    // Interval 3600 s, jitter 10 %: the window is min(360 s, 60 s) = 60 s.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let early = w.vault.gets.load(Ordering::SeqCst);
    assert!(
        early > 20 && early < 140,
        "about a third in the first 20 s, got {early}"
    );
    while w.store.writes.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        start.elapsed() <= Duration::from_secs(61),
        "{:?}",
        start.elapsed()
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn without_required_sync_a_certificate_not_on_disk_is_fetched_at_once() {
    let w = World::new();
    let certs: Vec<_> = (0..200)
        .map(|n| {
            let name = format!("c{n}");
            w.vault.put("v", &name, "one");
            // Half of them were installed by an earlier run.
            if n % 2 == 0 {
                w.store.preinstall("v", &name, "one");
            }
            cert("v", &name)
        })
        .collect();
    let agent = Agent::start(&settings(certs, false), w.ports());
    // Well within the 60 s window: every missing certificate is on disk already (a
    // request costs 5 ms of fake latency, the token 20 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let missing = (0..200)
        .filter(|n| n % 2 == 1)
        .filter(|n| w.store.current("v", &format!("c{n}")).is_none())
        .count();
    assert_eq!(
        missing, 0,
        "certificates not on disk waited for the start window"
    );
    // Those already installed are still spread: not all were checked yet.
    assert!(
        w.vault.gets.load(Ordering::SeqCst) < 190,
        "{}",
        w.vault.gets.load(Ordering::SeqCst)
    );
    agent.shutdown().await;
}

#[test]
fn the_start_window_is_zero_when_someone_waits() {
    use akv_sync_actors::watcher::startup_spread;
    let h = Duration::from_secs(3600);
    assert_eq!(startup_spread(true, h, 0.1), Duration::ZERO);
    assert_eq!(startup_spread(false, h, 0.1), Duration::from_secs(60));
    assert_eq!(
        startup_spread(false, Duration::from_secs(100), 0.1),
        Duration::from_secs(10)
    );
}
