//! The writer actor: the only code that touches the store.
//!
//! Watchers send it prepared certificates; it installs them one at a time on the blocking
//! pool (file writes, fsync, ACLs), so that two writes never race on one folder. It never
//! waits on a watcher: replies go through `oneshot` channels that a watcher may have dropped.
//! Reads of the installed version have their own queue, served before installs and many in
//! one trip to the blocking pool.
//!
//! New versions installed from one run of queued requests (at most [`MAX_BATCH`]) are
//! reported together to the [`Observer`] (`installed_batch`), so that a reload hook runs
//! once for certificates that changed together. Installs are answered only once the run is
//! over and [`Installer::commit`] has made it durable (the store syncs its folder once
//! per run rather than once per link).

use std::sync::Arc;

use akv_sync_config::ObservedCertificate;
use tokio::sync::{mpsc, oneshot};

use crate::port::{InstallError, InstallFailure, InstallReport, Installer, NewVersion, Observer};

struct Install<P> {
    cert: Arc<ObservedCertificate>,
    version: String,
    prepared: P,
    reply: oneshot::Sender<Result<InstallReport, InstallError>>,
}

struct Read {
    cert: Arc<ObservedCertificate>,
    reply: oneshot::Sender<Result<Option<String>, InstallError>>,
}

/// Installs handled in one run before the run is closed: bounds how long an install waits
/// for its answer while the queue keeps refilling (an initial sync).
pub const MAX_BATCH: usize = 64;

type Answer = (
    oneshot::Sender<Result<InstallReport, InstallError>>,
    Result<InstallReport, InstallError>,
);

struct WriterActor<I: Installer> {
    installer: Arc<I>,
    observer: Arc<dyn Observer>,
    installs: mpsc::Receiver<Install<I::Prepared>>,
    reads: mpsc::Receiver<Read>,
}

impl<I: Installer> WriterActor<I> {
    async fn run(mut self) {
        loop {
            // Reads first: a check waits for its read before it may download anything, so
            // a read queued behind a long run of installs (each a few fsyncs) stalls the
            // whole pipeline.
            let first = tokio::select! {
                biased;
                Some(read) = self.reads.recv() => {
                    self.read_all(read).await;
                    continue;
                }
                install = self.installs.recv() => match install {
                    Some(install) => install,
                    None => break,
                },
            };
            let mut batch = Vec::new();
            let mut answers = Vec::new();
            self.install(first, &mut batch, &mut answers).await;
            // Take whatever queued up meanwhile before reporting the batch, answering reads
            // between installs.
            while answers.len() < MAX_BATCH {
                if let Ok(read) = self.reads.try_recv() {
                    self.read_all(read).await;
                }
                let Ok(next) = self.installs.try_recv() else {
                    break;
                };
                self.install(next, &mut batch, &mut answers).await;
            }
            let installer = self.installer.clone();
            let _ = tokio::task::spawn_blocking(move || installer.commit()).await;
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
            if !batch.is_empty() {
                self.observer.installed_batch(&batch);
            }
        }
        // Every install handle is gone; answer reads still queued.
        while let Ok(read) = self.reads.try_recv() {
            self.read_all(read).await;
        }
    }

    /// `first` and every read queued behind it, in one trip to the blocking pool.
    async fn read_all(&mut self, first: Read) {
        let mut reads = vec![first];
        while reads.len() < MAX_READS
            && let Ok(next) = self.reads.try_recv()
        {
            reads.push(next);
        }
        let installer = self.installer.clone();
        let work = tokio::task::spawn_blocking(move || {
            reads
                .into_iter()
                .map(|r| {
                    let result = installer.installed_version(&r.cert);
                    (r.reply, result)
                })
                .collect::<Vec<_>>()
        });
        // A panicked read drops its senders: those watchers see "the writer has stopped"
        // for this check and retry.
        if let Ok(done) = work.await {
            for (reply, result) in done {
                let _ = reply.send(result);
            }
        }
    }

    async fn install(
        &self,
        msg: Install<I::Prepared>,
        batch: &mut Vec<NewVersion>,
        answers: &mut Vec<Answer>,
    ) {
        let installer = self.installer.clone();
        let Install {
            cert,
            version,
            prepared,
            reply,
        } = msg;
        let (c, v) = (cert.clone(), version.clone());
        let result = tokio::task::spawn_blocking(move || installer.install(&c, &v, prepared))
            .await
            .unwrap_or_else(|e| {
                Err(InstallError::new(
                    InstallFailure::Writer,
                    format!("writer task failed: {e}"),
                ))
            });
        if let Ok(InstallReport::Installed { previous_version }) = &result {
            batch.push(NewVersion {
                cert,
                version,
                previous_version: previous_version.clone(),
            });
        }
        answers.push((reply, result));
    }
}

/// Reads answered in one trip to the blocking pool.
const MAX_READS: usize = 256;

/// Handle to the writer actor; the actor ends when every handle is dropped.
pub struct WriterHandle<I: Installer> {
    installs: mpsc::Sender<Install<I::Prepared>>,
    reads: mpsc::Sender<Read>,
}

impl<I: Installer> Clone for WriterHandle<I> {
    fn clone(&self) -> Self {
        WriterHandle {
            installs: self.installs.clone(),
            reads: self.reads.clone(),
        }
    }
}

fn stopped() -> InstallError {
    InstallError::new(InstallFailure::Writer, "the writer has stopped")
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
        Self::spawn_watched(installer, observer, &crate::died::Deaths::default())
    }

    /// Like [`spawn_joinable`](Self::spawn_joinable); a panic of the actor is reported to
    /// `deaths`.
    pub fn spawn_watched(
        installer: Arc<I>,
        observer: Arc<dyn Observer>,
        deaths: &crate::died::Deaths,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (installs, installs_rx) = mpsc::channel(256);
        let (reads, reads_rx) = mpsc::channel(MAX_READS);
        let task = deaths.spawn(
            "writer".to_owned(),
            WriterActor {
                installer,
                observer,
                installs: installs_rx,
                reads: reads_rx,
            }
            .run(),
        );
        (WriterHandle { installs, reads }, task)
    }

    /// Install `prepared` as `version` of `cert`.
    pub async fn install(
        &self,
        cert: Arc<ObservedCertificate>,
        version: String,
        prepared: I::Prepared,
    ) -> Result<InstallReport, InstallError> {
        let (reply, answer) = oneshot::channel();
        self.installs
            .send(Install {
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
        self.reads
            .send(Read { cert, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
