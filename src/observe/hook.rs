//! Reload hooks (beyond the original): a command per certificate and/or one global command,
//! run after a new version is fully in place (files written, fsynced, links swapped).
//!
//! The writer reports each batch of certificates it installed together; the hook actor runs
//! each changed certificate's own hook once, then the global hook once for the whole batch.
//! Hooks run without a shell, each in its own process group, with a time limit (the group is
//! killed past it); a hook has ended when its process has, whatever its background children
//! do with its output, of which at most 64 KiB is kept. Each certificate's hook and the
//! global hook have their own queue, so a slow hook never holds up other certificates' hooks.
//! A failing hook is logged and counted; it never stops the agent or other certificates.
//!
//! Environment of a per-certificate hook:
//! `AKV_SYNC_VAULT`, `AKV_SYNC_NAME`, `AKV_SYNC_VERSION`, `AKV_SYNC_PREVIOUS_VERSION` (empty
//! when none), `AKV_SYNC_STORE` (folder), `AKV_SYNC_FILE` (the version file),
//! `AKV_SYNC_LINK` (`<vault>.<name>` link), `AKV_SYNC_CUSTOM_LINK` (empty when none).
//! Environment of the global hook: `AKV_SYNC_CHANGED_COUNT`, and `AKV_SYNC_CHANGED`, one line
//! per certificate: `<vault>/<name> <version> <file>`.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use akv_sync_actors::NewVersion;
use akv_sync_config::{Hook, HookSpec};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Counts of hook runs, for metrics.
#[derive(Debug, Default)]
pub struct HookCounters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
}

/// Bytes of a hook's output (stdout and stderr together) kept; the rest is read and dropped.
pub const OUTPUT_MAX: usize = 64 * 1024;
/// Appended to output cut at [`OUTPUT_MAX`].
pub const OUTPUT_CUT: &str = "\n[output cut at 64 KiB]";

/// How one hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    Succeeded,
    Failed { code: Option<i32>, output: String },
    TimedOut,
    NotStarted(String),
}

fn argv(hook: &Hook) -> Vec<String> {
    match hook {
        Hook::Command(argv) => argv.clone(),
        Hook::ReloadUnit(unit) => {
            vec!["systemctl".into(), "reload-or-restart".into(), unit.clone()]
        }
    }
}

/// Run one hook with its environment and time limit.
///
/// The hook runs in its own process group. Its end is its own exit, not the end of its
/// output: a background child it leaves behind may keep the pipes open (and keeps running).
/// Past the time limit the whole group is killed. At most [`OUTPUT_MAX`] bytes of output
/// are kept; the rest is read and dropped, so that a chatty hook never blocks on a full pipe.
pub async fn run_hook(spec: &HookSpec, env: &[(String, String)]) -> HookResult {
    let argv = argv(&spec.hook);
    let Some((program, args)) = argv.split_first() else {
        return HookResult::NotStarted("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookResult::NotStarted(format!("{program}: {e}")),
    };
    // The group's id is the child's pid (process_group(0)).
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut captured = Captured::default();
    let (mut b1, mut b2) = (vec![0u8; 8192], vec![0u8; 8192]);
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = &mut deadline => {
                if let Some(pgid) = group {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill().await;
                return HookResult::TimedOut;
            }
            n = read_pipe(&mut out, &mut b1) => match n {
                0 => out = None,
                n => captured.push(&b1[..n]),
            },
            n = read_pipe(&mut err, &mut b2) => match n {
                0 => err = None,
                n => captured.push(&b2[..n]),
            },
        }
    };
    // What the hook wrote before it ended is in the pipes now: take it without waiting for
    // whoever else may still hold them.
    for pipe in [out.as_ref().map(AsFd::as_fd), err.as_ref().map(AsFd::as_fd)]
        .into_iter()
        .flatten()
    {
        while let Ok(n @ 1..) = nix::unistd::read(pipe, &mut b1) {
            captured.push(&b1[..n]);
        }
    }
    match status {
        Ok(status) if status.success() => HookResult::Succeeded,
        Ok(status) => HookResult::Failed {
            code: status.code(),
            output: captured.text(),
        },
        Err(e) => HookResult::NotStarted(e.to_string()),
    }
}

/// One read from a pipe still open; never completes once it is closed (`None`).
async fn read_pipe<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

/// A hook's output, kept up to [`OUTPUT_MAX`] bytes.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    cut: bool,
}

impl Captured {
    fn push(&mut self, more: &[u8]) {
        let room = OUTPUT_MAX.saturating_sub(self.bytes.len());
        self.cut |= more.len() > room;
        self.bytes.extend_from_slice(&more[..more.len().min(room)]);
    }

    fn text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.cut {
            text.push_str(OUTPUT_CUT);
        }
        text
    }
}

/// The environment of a certificate's hook.
pub fn certificate_env(i: &NewVersion) -> Vec<(String, String)> {
    let c = &i.cert;
    let store = c.store.display().to_string();
    vec![
        ("AKV_SYNC_VAULT".into(), c.url.vault.clone()),
        ("AKV_SYNC_NAME".into(), c.url.name.clone()),
        ("AKV_SYNC_VERSION".into(), i.version.clone()),
        (
            "AKV_SYNC_PREVIOUS_VERSION".into(),
            i.previous_version.clone().unwrap_or_default(),
        ),
        ("AKV_SYNC_STORE".into(), store.clone()),
        (
            "AKV_SYNC_FILE".into(),
            c.version_path(&i.version).display().to_string(),
        ),
        ("AKV_SYNC_LINK".into(), c.link_path().display().to_string()),
        (
            "AKV_SYNC_CUSTOM_LINK".into(),
            c.custom_link_path()
                .map(|l| l.display().to_string())
                .unwrap_or_default(),
        ),
    ]
}

/// The environment of the global hook.
pub fn batch_env(batch: &[NewVersion]) -> Vec<(String, String)> {
    let lines: Vec<String> = batch
        .iter()
        .map(|i| {
            format!(
                "{} {} {}",
                i.cert.secret_id(),
                i.version,
                i.cert.version_path(&i.version).display()
            )
        })
        .collect();
    vec![
        ("AKV_SYNC_CHANGED_COUNT".into(), batch.len().to_string()),
        ("AKV_SYNC_CHANGED".into(), lines.join("\n")),
    ]
}

/// Handle to the hook actor.
#[derive(Clone)]
pub struct Hooks {
    tx: mpsc::UnboundedSender<Vec<NewVersion>>,
    has_global: bool,
    pub counters: Arc<HookCounters>,
}

/// One hook run queued on a lane.
struct Job {
    kind: &'static str,
    what: String,
    spec: HookSpec,
    env: Vec<(String, String)>,
    /// Runs this one waits for first (the global hook waits for its batch's own hooks).
    after: Vec<oneshot::Receiver<()>>,
    /// Dropped when this run has ended.
    done: Option<oneshot::Sender<()>>,
}

/// The lane of `key`, started on first use: one task running its jobs in order.
fn lane<'a>(
    lanes: &'a mut HashMap<String, mpsc::UnboundedSender<Job>>,
    running: &mut tokio::task::JoinSet<()>,
    counters: &Arc<HookCounters>,
    key: String,
) -> &'a mpsc::UnboundedSender<Job> {
    lanes.entry(key).or_insert_with(|| {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let c = counters.clone();
        running.spawn(async move {
            while let Some(job) = rx.recv().await {
                for earlier in job.after {
                    let _ = earlier.await;
                }
                record(&c, job.kind, &job.what, run_hook(&job.spec, &job.env).await);
                drop(job.done);
            }
        });
        tx
    })
}

impl Hooks {
    /// Start the hook actor; `global` runs once per batch, after the batch's certificate
    /// hooks.
    ///
    /// Each certificate's hook and the global hook run on their own lane: runs of one lane
    /// keep their order, and a slow hook holds up only its own lane (and the global run of
    /// its batch), never other certificates' hooks. The returned task ends once every queued
    /// run has ended after the last handle is dropped.
    /// `counters` outlive the actor (a reload starts a new one): metrics read running totals.
    pub fn spawn(
        global: Option<HookSpec>,
        counters: Arc<HookCounters>,
    ) -> (Hooks, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<NewVersion>>();
        let c = counters.clone();
        let has_global = global.is_some();
        let task = tokio::spawn(async move {
            let mut lanes = HashMap::new();
            let mut running = tokio::task::JoinSet::new();
            while let Some(batch) = rx.recv().await {
                let mut batch_done = Vec::new();
                for i in &batch {
                    if let Some(spec) = &i.cert.hook {
                        let what = i.cert.secret_id();
                        let key = format!("{what} {}", i.cert.store.display());
                        let (done, waited) = oneshot::channel();
                        batch_done.push(waited);
                        let _ = lane(&mut lanes, &mut running, &c, key).send(Job {
                            kind: "certificate",
                            what,
                            spec: spec.clone(),
                            env: certificate_env(i),
                            after: Vec::new(),
                            done: Some(done),
                        });
                    }
                }
                if let Some(spec) = &global {
                    let _ = lane(&mut lanes, &mut running, &c, String::new()).send(Job {
                        kind: "global",
                        what: format!("{} certificate(s)", batch.len()),
                        spec: spec.clone(),
                        env: batch_env(&batch),
                        after: batch_done,
                        done: None,
                    });
                }
            }
            drop(lanes);
            while running.join_next().await.is_some() {}
        });
        (
            Hooks {
                tx,
                has_global,
                counters,
            },
            task,
        )
    }

    /// Queue a batch (called from the writer's observer; never blocks).
    pub fn changed(&self, batch: &[NewVersion]) {
        if self.has_global || batch.iter().any(|i| i.cert.hook.is_some()) {
            let _ = self.tx.send(batch.to_vec());
        }
    }
}

fn record(c: &HookCounters, kind: &str, what: &str, result: HookResult) {
    c.runs.fetch_add(1, Ordering::Relaxed);
    match result {
        HookResult::Succeeded => info!(hook = kind, changed = what, "hook ran"),
        HookResult::Failed { code, output } => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            // The first 2,000 characters of what was kept: enough to say why, one log line.
            let shown: String = output.trim().chars().take(2000).collect();
            warn!(hook = kind, changed = what, exit_code = ?code, output = %shown, "hook failed");
        }
        HookResult::TimedOut => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            warn!(hook = kind, changed = what, "hook timed out and was killed");
        }
        HookResult::NotStarted(why) => {
            c.failures.fetch_add(1, Ordering::Relaxed);
            warn!(hook = kind, changed = what, error = %why, "hook could not start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(argv: &[&str], secs: u64) -> HookSpec {
        HookSpec {
            hook: Hook::Command(argv.iter().map(|s| s.to_string()).collect()),
            timeout: Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn a_hook_sees_its_environment() {
        let r = run_hook(
            &spec(&["sh", "-c", "test \"$AKV_SYNC_VERSION\" = abc"], 10),
            &[("AKV_SYNC_VERSION".into(), "abc".into())],
        )
        .await;
        assert_eq!(r, HookResult::Succeeded);
    }

    #[tokio::test]
    async fn a_failing_hook_reports_its_code_and_output() {
        let r = run_hook(&spec(&["sh", "-c", "echo nope >&2; exit 3"], 10), &[]).await;
        assert_eq!(
            r,
            HookResult::Failed {
                code: Some(3),
                output: "nope\n".into()
            }
        );
    }

    // Paused time: the limit passes in virtual time while the child still runs.
    #[tokio::test(start_paused = true)]
    async fn a_hook_past_its_time_limit_is_killed() {
        let r = run_hook(&spec(&["sleep", "30"], 1), &[]).await;
        assert_eq!(r, HookResult::TimedOut);
    }

    #[tokio::test]
    async fn a_hook_leaving_a_background_child_succeeds_promptly() {
        // The background child keeps the hook's stdout open for 20 s; the hook itself is done.
        let start = std::time::Instant::now();
        let r = run_hook(&spec(&["sh", "-c", "sleep 20 & exit 0"], 10), &[]).await;
        assert_eq!(r, HookResult::Succeeded);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    /// A FIFO in a fresh folder; `open_reader` gives whatever the writers sent once every
    /// writer has closed it (i.e. ended), or `None` if that takes over `within`.
    fn fifo(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        path
    }

    fn read_to_eof(path: std::path::PathBuf) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        // A plain thread, never joined: on failure it stays blocked without holding up the test.
        std::thread::spawn(move || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let _ = tx.send(text);
        });
        rx
    }

    #[tokio::test]
    async fn a_timed_out_hook_is_killed_with_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let held = fifo(dir.path(), "held");
        // The grandchild holds the FIFO open for writing until it dies.
        let script = format!("sleep 300 > {} & wait", held.display());
        let eof = read_to_eof(held);
        let r = run_hook(&spec(&["sh", "-c", &script], 2), &[]).await;
        assert_eq!(r, HookResult::TimedOut);
        let got = tokio::task::spawn_blocking(move || eof.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(got.is_ok(), "the grandchild outlived the timed-out hook");
    }

    #[tokio::test]
    async fn a_hook_printing_10_mb_is_capped() {
        let r = run_hook(
            &spec(
                &[
                    "sh",
                    "-c",
                    "head -c 10000000 /dev/zero | tr '\\0' a; exit 1",
                ],
                30,
            ),
            &[],
        )
        .await;
        let HookResult::Failed { code, output } = r else {
            panic!("{r:?}");
        };
        assert_eq!(code, Some(1));
        assert!(output.len() <= OUTPUT_MAX + 64, "{}", output.len());
        assert!(output.ends_with(OUTPUT_CUT), "the cut is said");
    }

    fn installed(name: &str, argv: &[&str]) -> NewVersion {
        use akv_sync_config::{CertificateUrl, Cloud, ExtraOutputs, ObservedCertificate};
        let host = format!("v.{}", Cloud::Public.suffix());
        NewVersion {
            cert: Arc::new(ObservedCertificate {
                json_path: format!("observedCertificates[{name}]"),
                url: CertificateUrl {
                    original: format!("https://{host}/secrets/{name}"),
                    vault: "v".into(),
                    host,
                    port: None,
                    cloud: Cloud::Public,
                    name: name.into(),
                    version: None,
                },
                store: std::path::PathBuf::from("/nonexistent"),
                link_name: None,
                acls: vec![],
                outputs: ExtraOutputs::default(),
                hook: Some(spec(argv, 60)),
            }),
            version: "0".repeat(32),
            previous_version: None,
        }
    }

    #[tokio::test]
    async fn a_slow_hook_does_not_hold_up_later_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let stuck = fifo(dir.path(), "stuck");
        let done = fifo(dir.path(), "done");
        let (hooks, _task) = Hooks::spawn(None, Default::default());
        // The first certificate's hook waits for a writer of `stuck` that never comes.
        let slow = format!("cat {}", stuck.display());
        hooks.changed(&[installed("slow", &["sh", "-c", &slow])]);
        let quick = format!("echo ran > {}", done.display());
        let ran = read_to_eof(done);
        hooks.changed(&[installed("quick", &["sh", "-c", &quick])]);
        let got = tokio::task::spawn_blocking(move || ran.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Ok("ran\n"));
        // Release the slow hook.
        let _ = std::fs::OpenOptions::new().write(true).open(&stuck);
    }

    #[tokio::test]
    async fn a_missing_program_is_reported() {
        let r = run_hook(&spec(&["/nonexistent/akv-hook"], 1), &[]).await;
        assert!(matches!(r, HookResult::NotStarted(_)));
    }
}
