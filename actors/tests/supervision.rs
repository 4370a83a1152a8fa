//! An actor that dies is never silent: the agent reports which one, so that the daemon exits
//! non-zero and systemd restarts it (issue 15, class 5).

mod fakes;

use std::sync::Arc;
use std::time::Duration;

use akv_sync_actors::*;
use akv_sync_config::*;
use fakes::*;

struct PanickyIdentity;

impl TokenSource for PanickyIdentity {
    async fn fetch(&self, _audience: &str) -> Result<FetchedToken, SourceError> {
        panic!("the token source broke");
    }
}

struct PanickyVault;

impl SecretSource for PanickyVault {
    async fn get(
        &self,
        _url: &CertificateUrl,
        _token: &Token,
        _installed: Option<&str>,
    ) -> Result<Fetched, SourceError> {
        panic!("the vault client broke");
    }
}

/// Panics when told of an installed batch (it runs on the writer).
struct PanickyObserver;

impl Observer for PanickyObserver {
    fn installed_batch(&self, _batch: &[NewVersion]) {
        panic!("the observer broke");
    }
}

async fn died_within(agent: &Agent) -> String {
    tokio::time::timeout(Duration::from_secs(600), agent.died())
        .await
        .expect("an actor died and nobody was told")
}

#[tokio::test(start_paused = true)]
async fn a_panicking_token_actor_is_reported() {
    let w = World::new();
    w.vault.put("v", "c", "1");
    let ports = Ports {
        tokens: Arc::new(PanickyIdentity),
        secrets: w.vault.clone(),
        installer: w.store.clone(),
        status: w.status.clone(),
        observer: Arc::new(NoObserver),
    };
    let agent = Agent::start(&settings(vec![cert("v", "c")], false), ports);
    assert!(died_within(&agent).await.contains("token"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_watcher_is_reported() {
    let w = World::new();
    let ports = Ports {
        tokens: w.identity.clone(),
        secrets: Arc::new(PanickyVault),
        installer: w.store.clone(),
        status: w.status.clone(),
        observer: Arc::new(NoObserver),
    };
    let agent = Agent::start(&settings(vec![cert("v", "c")], false), ports);
    let died = died_within(&agent).await;
    assert!(died.contains("watcher") && died.contains("v/c"), "{died}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_writer_is_reported() {
    let w = World::new();
    w.vault.put("v", "c", "1");
    let ports = Ports {
        tokens: w.identity.clone(),
        secrets: w.vault.clone(),
        installer: w.store.clone(),
        status: w.status.clone(),
        observer: Arc::new(PanickyObserver),
    };
    let agent = Agent::start(&settings(vec![cert("v", "c")], false), ports);
    assert!(died_within(&agent).await.contains("writer"));
}
