//! `requireInitialSync` in the 1.x/2.x schema: its documentation says the first download is
//! retried indefinitely (issue 16.5); the 3.x schema gives up after 25 attempts.

mod fakes;

use std::time::Duration;

use akv_sync_actors::*;
use akv_sync_config::Schema;
use fakes::*;

async fn first_settled(agent: &Agent) -> Status {
    tokio::time::timeout(Duration::from_secs(86_400), agent.gate().settled_status())
        .await
        .expect("the gate settles within a day")
}

#[tokio::test(start_paused = true)]
async fn in_the_2x_schema_required_sync_retries_the_first_download_indefinitely() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    // Far more failures than the 25 attempts of the 3.x schema.
    w.vault.fail("v", "c", ErrorClass::Transient, 60);
    let mut s = settings(vec![cert("v", "c")], true);
    s.schema = Schema::V2;
    let agent = Agent::start(&s, w.ports());
    let status = first_settled(&agent).await;
    assert_eq!(status.state, State::Success, "{}", status.message);
    assert_eq!(w.store.current("v", "c").as_deref(), Some("one"));
    assert!(
        w.status
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.state != State::Error),
        "no error on the way"
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn in_the_3x_schema_required_sync_gives_up_after_25_attempts() {
    let w = World::new();
    w.vault.put("v", "c", "one");
    w.vault.fail("v", "c", ErrorClass::Transient, 60);
    let agent = Agent::start(&settings(vec![cert("v", "c")], true), w.ports());
    let status = first_settled(&agent).await;
    assert_eq!(status.state, State::Error, "{}", status.message);
    agent.shutdown().await;
}
