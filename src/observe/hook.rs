//! Reload hooks (beyond the original): a command per certificate and/or one global command,
//! run after a new version is fully in place (files written, fsynced, links swapped).
//!
//! The writer reports each batch of certificates it installed together; the hook actor runs
//! each changed certificate's own hook once, then the global hook once for the whole batch.
//! Hooks run one at a time, without a shell, with a time limit (killed past it). A failing
//! hook is logged and counted; it never stops the agent or other certificates.
//!
//! Environment of a per-certificate hook:
//! `AKV_SYNC_VAULT`, `AKV_SYNC_NAME`, `AKV_SYNC_VERSION`, `AKV_SYNC_PREVIOUS_VERSION` (empty
//! when none), `AKV_SYNC_STORE` (folder), `AKV_SYNC_FILE` (the version file),
//! `AKV_SYNC_LINK` (`<vault>.<name>` link), `AKV_SYNC_CUSTOM_LINK` (empty when none).
//! Environment of the global hook: `AKV_SYNC_CHANGED_COUNT`, and `AKV_SYNC_CHANGED`, one line
//! per certificate: `<vault>/<name> <version> <file>`.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use akv_sync_actors::Installed;
use akv_sync_config::{Hook, HookSpec};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Counts of hook runs, for metrics.
#[derive(Debug, Default)]
pub struct HookCounters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
}

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
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookResult::NotStarted(format!("{program}: {e}")),
    };
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let collect = async {
        let mut o = Vec::new();
        let mut e = Vec::new();
        let _ = tokio::join!(out.read_to_end(&mut o), err.read_to_end(&mut e));
        o.extend_from_slice(&e);
        o
    };
    let waited = tokio::time::timeout(spec.timeout, async {
        let (output, status) = tokio::join!(collect, child.wait());
        (output, status)
    })
    .await;
    match waited {
        Err(_) => {
            let _ = child.kill().await;
            HookResult::TimedOut
        }
        Ok((_, Ok(status))) if status.success() => HookResult::Succeeded,
        Ok((output, Ok(status))) => HookResult::Failed {
            code: status.code(),
            output: String::from_utf8_lossy(&output)
                .chars()
                .take(2000)
                .collect(),
        },
        Ok((_, Err(e))) => HookResult::NotStarted(e.to_string()),
    }
}

/// The environment of a certificate's hook.
pub fn certificate_env(i: &Installed) -> Vec<(String, String)> {
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
pub fn batch_env(batch: &[Installed]) -> Vec<(String, String)> {
    let lines: Vec<String> = batch
        .iter()
        .map(|i| {
            format!(
                "{} {} {}",
                i.cert.id(),
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
    tx: mpsc::UnboundedSender<Vec<Installed>>,
    has_global: bool,
    pub counters: Arc<HookCounters>,
}

impl Hooks {
    /// Start the hook actor; `global` runs once per batch.
    /// `counters` outlive the actor (a reload starts a new one): metrics read running totals.
    pub fn spawn(
        global: Option<HookSpec>,
        counters: Arc<HookCounters>,
    ) -> (Hooks, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Installed>>();
        let c = counters.clone();
        let has_global = global.is_some();
        let task = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for i in &batch {
                    if let Some(spec) = &i.cert.hook {
                        record(
                            &c,
                            "certificate",
                            &i.cert.id(),
                            run_hook(spec, &certificate_env(i)).await,
                        );
                    }
                }
                if let Some(spec) = &global {
                    record(
                        &c,
                        "global",
                        &format!("{} certificate(s)", batch.len()),
                        run_hook(spec, &batch_env(&batch)).await,
                    );
                }
            }
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
    pub fn changed(&self, batch: &[Installed]) {
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
            warn!(hook = kind, changed = what, exit_code = ?code, output = %output.trim(), "hook failed");
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
    async fn a_missing_program_is_reported() {
        let r = run_hook(&spec(&["/nonexistent/akv-hook"], 1), &[]).await;
        assert!(matches!(r, HookResult::NotStarted(_)));
    }
}
