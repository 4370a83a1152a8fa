//! Actors that die are never silent.
//!
//! Every actor task (watchers, the token actor and its fetches, the writer) runs under
//! [`Deaths::spawn`]: a task that ends by panicking is logged and reported here, and
//! [`crate::Agent::died`] returns. The daemon then exits non-zero so that systemd restarts it
//! (`Restart=on-failure`): a process with a dead token actor or writer would otherwise live
//! on, failing every check, with its status stuck.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where actor deaths are reported; cheap to clone.
#[derive(Clone, Default)]
pub struct Deaths {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    any: CancellationToken,
    first: Mutex<Option<String>>,
}

impl Deaths {
    /// Record that `actor` died (the first report is the one [`Deaths::first`] gives).
    pub fn report(&self, actor: &str) {
        tracing::error!(
            actor,
            "an actor of the agent died (panicked); the agent must restart"
        );
        let mut first = self.inner.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(actor.to_owned());
        }
        self.inner.any.cancel();
    }

    /// Wait for the first death; returns which actor it was.
    pub async fn first(&self) -> String {
        self.inner.any.cancelled().await;
        self.inner
            .first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Run `task` as `actor`; a panic is reported. The returned handle ends when it does.
    pub fn spawn<F>(&self, actor: String, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.watched(actor, task))
    }

    /// `task` spawned as `actor`, as a future that ends when it does (for a `TaskTracker`).
    pub fn watched<F>(&self, actor: String, task: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = tokio::spawn(task);
        let deaths = self.clone();
        async move {
            if let Err(e) = inner.await
                && e.is_panic()
            {
                deaths.report(&actor);
            }
        }
    }
}
