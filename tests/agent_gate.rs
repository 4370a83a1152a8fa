//! The initial-sync gate against the emulator, in paused time: 25 attempts take about 20
//! minutes of (virtual) time.

mod agent_support;

use std::time::Duration;

use agent_support::*;
use akv_sync_actors::State;
use akv_sync_emulator::{Fault, FaultAction, FaultTarget};
use serde_json::json;

async fn settled(agent: &akv_sync_actors::Agent) -> akv_sync_actors::Status {
    tokio::time::timeout(Duration::from_secs(4 * 3600), agent.gate().settled_status())
        .await
        .expect("the gate settles")
}

#[tokio::test(start_paused = true)]
async fn the_gate_ends_in_error_naming_what_failed_after_25_attempts() {
    let w = World::start().await;
    w.create(&[("alpha", "ok"), ("alpha", "denied")]);
    w.emulator.control().inject_fault(Fault::new(
        FaultTarget::Vault,
        "/secrets/denied*",
        FaultAction::Status {
            status: 403,
            body: None,
            retry_after: None,
        },
    ));
    let (probe, _events) = probe();
    let agent = w.start_agent(
        &w.settings(&[url("alpha", "ok"), url("alpha", "denied")], json!({})),
        &probe,
    );
    let status = settled(&agent).await;
    assert_eq!(status.state, State::Error, "{}", status.message);
    // Only alpha/denied failed (ids name the store too).
    assert_eq!(status.failed_count, 1, "{:?}", status.failures);
    assert!(
        status.failures[0].id.starts_with("alpha/denied in "),
        "{:?}",
        status.failures
    );
    // The fix is part of what the user is told (403 → the role to grant).
    assert!(
        status.failures[0].why.contains("Key Vault Secrets User"),
        "{}",
        status.failures[0].why
    );
    let denied = w
        .emulator
        .control()
        .counters()
        .requests
        .iter()
        .filter(|r| r.path.contains("denied") && r.status == 403)
        .map(|r| r.count)
        .sum::<u64>();
    assert_eq!(denied, 25, "exactly 25 attempts");
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_gate_reports_success_when_the_fault_clears_in_time() {
    let w = World::start().await;
    w.create(&[("alpha", "late")]);
    let mut fault = Fault::new(
        FaultTarget::Vault,
        "/secrets/late*",
        FaultAction::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
    );
    fault.count = Some(20);
    w.emulator.control().inject_fault(fault);
    let (probe, _events) = probe();
    let agent = w.start_agent(&w.settings(&[url("alpha", "late")], json!({})), &probe);
    let status = settled(&agent).await;
    assert_eq!(status.state, State::Success, "{}", status.message);
    let mut states: Vec<State> = probe
        .statuses
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.state.clone())
        .collect();
    states.dedup();
    assert_eq!(states, [State::Transitioning, State::Success]);
    agent.shutdown().await;
}
