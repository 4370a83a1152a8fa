//! The writer actor: the only code that touches the store.
//!
//! Watchers send it prepared certificates; it installs them one at a time on the blocking
//! pool (file writes, fsync, ACLs), so that two writes never race on one folder. It never
//! waits on a watcher: replies go through `oneshot` channels that a watcher may have dropped.
//!
//! New versions installed from one run of queued requests are reported together to the
//! [`Observer`] (`installed_batch`), so that a reload hook runs once for certificates that
//! changed together.

use std::sync::Arc;

use akv_sync_config::ObservedCertificate;
use tokio::sync::{mpsc, oneshot};

use crate::port::{InstallError, InstallReport, Installed, Installer, Observer};

enum Msg<P> {
    Install {
        cert: Arc<ObservedCertificate>,
        version: String,
        prepared: P,
        reply: oneshot::Sender<Result<InstallReport, InstallError>>,
    },
    InstalledVersion {
        cert: Arc<ObservedCertificate>,
        reply: oneshot::Sender<Result<Option<String>, InstallError>>,
    },
}

struct WriterActor<I: Installer> {
    installer: Arc<I>,
    observer: Arc<dyn Observer>,
    rx: mpsc::Receiver<Msg<I::Prepared>>,
}

impl<I: Installer> WriterActor<I> {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut batch = Vec::new();
            self.handle(first, &mut batch).await;
            // Take whatever queued up meanwhile before reporting the batch.
            while let Ok(next) = self.rx.try_recv() {
                self.handle(next, &mut batch).await;
            }
            self.installer.batch_done();
            if !batch.is_empty() {
                self.observer.installed_batch(&batch);
            }
        }
    }

    async fn handle(&self, msg: Msg<I::Prepared>, batch: &mut Vec<Installed>) {
        let installer = self.installer.clone();
        match msg {
            Msg::Install {
                cert,
                version,
                prepared,
                reply,
            } => {
                let (c, v) = (cert.clone(), version.clone());
                let result =
                    tokio::task::spawn_blocking(move || installer.install(&c, &v, prepared))
                        .await
                        .unwrap_or_else(|e| {
                            Err(InstallError::retryable(format!("writer task failed: {e}")))
                        });
                if let Ok(InstallReport::Installed { previous_version }) = &result {
                    batch.push(Installed {
                        cert,
                        version,
                        previous_version: previous_version.clone(),
                    });
                }
                let _ = reply.send(result);
            }
            Msg::InstalledVersion { cert, reply } => {
                let result =
                    tokio::task::spawn_blocking(move || installer.installed_version(&cert))
                        .await
                        .unwrap_or_else(|e| {
                            Err(InstallError::retryable(format!("writer task failed: {e}")))
                        });
                let _ = reply.send(result);
            }
        }
    }
}

/// Handle to the writer actor; the actor ends when every handle is dropped.
pub struct WriterHandle<I: Installer> {
    tx: mpsc::Sender<Msg<I::Prepared>>,
}

impl<I: Installer> Clone for WriterHandle<I> {
    fn clone(&self) -> Self {
        WriterHandle {
            tx: self.tx.clone(),
        }
    }
}

fn stopped() -> InstallError {
    InstallError::retryable("the writer has stopped")
}

impl<I: Installer> WriterHandle<I> {
    pub fn spawn(installer: Arc<I>, observer: Arc<dyn Observer>) -> Self {
        Self::spawn_joinable(installer, observer).0
    }

    /// Like [`spawn`](Self::spawn), with the actor's task: it ends once every handle is
    /// dropped and every queued write is done.
    pub fn spawn_joinable(
        installer: Arc<I>,
        observer: Arc<dyn Observer>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(
            WriterActor {
                installer,
                observer,
                rx,
            }
            .run(),
        );
        (WriterHandle { tx }, task)
    }

    /// Install `prepared` as `version` of `cert`.
    pub async fn install(
        &self,
        cert: Arc<ObservedCertificate>,
        version: String,
        prepared: I::Prepared,
    ) -> Result<InstallReport, InstallError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Install {
                cert,
                version,
                prepared,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The version the certificate's link points at now.
    pub async fn installed_version(
        &self,
        cert: Arc<ObservedCertificate>,
    ) -> Result<Option<String>, InstallError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::InstalledVersion { cert, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
