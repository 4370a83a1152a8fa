//! The writer actor's ordering: reads of the installed version are not stuck behind queued
//! installs, and installs are answered only after the batch was made durable.

mod fakes;

use std::sync::{Arc, Mutex};

use akv_sync_actors::writer::WriterHandle;
use akv_sync_actors::*;
use akv_sync_config::ObservedCertificate;

/// An installer whose install of version "A" waits until the test lets it go; it logs
/// every call in order.
struct Gated {
    log: Arc<Mutex<Vec<String>>>,
    started: tokio::sync::mpsc::UnboundedSender<()>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Installer for Gated {
    type Prepared = ();

    fn prepare(&self, _: &ObservedCertificate, _: SecretBundle) -> Result<(), InstallError> {
        Ok(())
    }

    fn install(
        &self,
        _: &ObservedCertificate,
        version: &str,
        _: (),
    ) -> Result<InstallReport, InstallError> {
        let _ = self.started.send(());
        if version == "A" {
            self.release.lock().unwrap().recv().unwrap();
        }
        self.log.lock().unwrap().push(format!("install {version}"));
        Ok(InstallReport::Installed {
            previous_version: None,
        })
    }

    fn installed_version(&self, _: &ObservedCertificate) -> Result<Option<String>, InstallError> {
        self.log.lock().unwrap().push("read".into());
        Ok(None)
    }

    fn commit(&self) {
        self.log.lock().unwrap().push("batch done".into());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_is_served_before_queued_installs_and_installs_are_answered_after_the_batch() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let installer = Arc::new(Gated {
        log: log.clone(),
        started: started_tx,
        release: Mutex::new(release_rx),
    });
    let writer = WriterHandle::spawn(installer, Arc::new(NoObserver));
    let cert = Arc::new(fakes::cert("v", "c"));

    let install = |version: &'static str| {
        let (writer, cert, log) = (writer.clone(), cert.clone(), log.clone());
        tokio::spawn(async move {
            writer.install(cert, version.into(), ()).await.unwrap();
            log.lock().unwrap().push(format!("answer {version}"));
        })
    };
    let a = install("A");
    started.recv().await.expect("install A is running");
    // Two more installs queue up behind A (this runtime has one thread: yielding lets the
    // spawned tasks send their requests), then a read.
    let (b, c) = (install("B"), install("C"));
    tokio::task::yield_now().await;
    let read = {
        let (writer, cert) = (writer.clone(), cert.clone());
        tokio::spawn(async move { writer.installed_version(cert).await.unwrap() })
    };
    tokio::task::yield_now().await;
    release.send(()).unwrap();
    assert_eq!(read.await.unwrap(), None);
    for t in [a, b, c] {
        t.await.unwrap();
    }

    let log = log.lock().unwrap().clone();
    assert_eq!(
        log[..4],
        ["install A", "read", "install B", "install C"],
        "the read went ahead of the queued installs: {log:?}"
    );
    let done = log.iter().position(|e| e == "batch done").unwrap();
    for v in ["A", "B", "C"] {
        let answered = log
            .iter()
            .position(|e| *e == format!("answer {v}"))
            .unwrap();
        assert!(
            done < answered,
            "{v} answered before the batch was done: {log:?}"
        );
    }
}
