//! `akv-sync run`: the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use akv_sync_actors::{Agent, GateHandle, StatusSink};
use akv_sync_config::Settings;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cli::ports::ports;
use crate::cli::settings_file::{load_or_exit, load_settings, log_parsed, refused};
use crate::log::{self, LogArgs};
use crate::observe::Observability;
use crate::status::{Fanout, LogStatus, Systemd, VmAgentStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settings file (bare, ARM resource or VM-agent handler settings; schema 1.x–3.x).
    #[arg(long, env = "AKV_SYNC_SETTINGS")]
    pub settings: PathBuf,
    /// Also write the VM agent's status file `<DIR>/<SEQUENCE>.status`.
    #[arg(long, requires = "sequence")]
    pub status_dir: Option<PathBuf>,
    /// The settings sequence number for `--status-dir`.
    #[arg(long)]
    pub sequence: Option<u64>,
    /// Folder of the file log (rotated at 10 MiB, 5 kept).
    #[arg(long, default_value = log::DEFAULT_LOG_DIR, env = "AKV_SYNC_LOG_DIR")]
    pub log_dir: PathBuf,
    /// Log to stderr only.
    #[arg(long)]
    pub no_log_file: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(&args.settings) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let log_dir = (!args.no_log_file).then_some(args.log_dir.as_path());
    let logs = log::init(&args.log, log_dir, loaded.parsed.settings.logging.as_ref());
    log_parsed(&loaded);
    let refused = refused(&loaded.parsed);
    let parsed = loaded.parsed;
    crate::azure::net::warn_overrides();
    let mut sinks: Vec<Arc<dyn StatusSink>> =
        vec![Arc::new(LogStatus), Arc::new(Systemd::default())];
    let mut vm_status = None;
    if let (Some(dir), Some(seq)) = (&args.status_dir, args.sequence) {
        let sink = Arc::new(VmAgentStatus::new(dir, seq, "Enable"));
        vm_status = Some(sink.clone());
        sinks.push(sink);
    }
    let sink: Arc<dyn StatusSink> = Arc::new(Fanout(sinks));
    let runtime = super::ports::runtime()?;
    runtime.block_on(async move {
        let observe = Observability::new(parsed.settings.agent.expiry_warning_days);
        if let Some(q) = logs.fluentd {
            observe.watch_log_queue(q);
        }
        Daemon {
            path: args.settings,
            sink,
            vm_status,
            observe,
        }
        .run(parsed.settings, refused)
        .await
    })
}

struct Daemon {
    path: PathBuf,
    sink: Arc<dyn StatusSink>,
    /// The VM agent's status file: it follows the settings link to a new `<n>.settings`.
    vm_status: Option<Arc<VmAgentStatus>>,
    observe: Observability,
}

/// The sequence `path` names when it is (or links to) `<n>.settings`, as the handler's
/// `config/akv-sync.settings` link does.
fn linked_sequence(path: &std::path::Path) -> Option<u64> {
    let target = std::fs::read_link(path).ok()?;
    target
        .file_name()?
        .to_str()?
        .strip_suffix(".settings")?
        .parse()
        .ok()
}

/// Everything that lives as long as one set of agent-wide settings.
struct Generation {
    agent: Agent,
    hooks: tokio::task::JoinHandle<()>,
}

impl Daemon {
    fn start(
        &self,
        settings: &Settings,
        refused: &[(String, String)],
    ) -> anyhow::Result<Generation> {
        let hooks_done = self.observe.start_hooks(settings.agent.hook.clone());
        let ports = ports(
            settings,
            self.sink.clone(),
            self.observe.observer(),
            Some(self.observe.requests()),
        )?;
        Ok(Generation {
            agent: Agent::start_refusing(settings, ports, refused),
            hooks: hooks_done,
        })
    }

    async fn stop(&self, running: Generation) {
        running.agent.shutdown().await;
        // The writer has ended: no batch can reach the hooks any more. Let queued hooks run.
        self.observe.stop_hooks();
        let _ = running.hooks.await;
    }

    async fn run(
        self,
        mut settings: Settings,
        mut refused: Vec<(String, String)>,
    ) -> anyhow::Result<ExitCode> {
        // First: a SIGHUP sent as soon as the agent runs (the handler applying a new
        // sequence) is then queued, not the default action that ends the process.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut running = self.start(&settings, &refused)?;
        let gate: Arc<Mutex<GateHandle>> = Arc::new(Mutex::new(running.agent.gate().clone()));
        let cancel = CancellationToken::new();
        let server = match settings.agent.metrics_address {
            Some(addr) => Some(
                self.observe
                    .serve(
                        addr,
                        gate.clone(),
                        settings.polling_interval,
                        cancel.clone(),
                    )
                    .await?,
            ),
            None => None,
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                // A dead actor is never silent: exit non-zero, and systemd restarts the agent
                // (Restart=on-failure) with every actor fresh.
                actor = running.agent.died() => {
                    error!(actor = %actor, "an actor of the agent died; exiting with code 1 so that it is restarted");
                    return Ok(ExitCode::from(1));
                }
                _ = hup.recv() => {
                    info!(settings = %self.path.display(), "SIGHUP: re-reading settings");
                    let (new, new_refused) = match load_settings(&self.path) {
                        Ok(loaded) => {
                            log_parsed(&loaded);
                            let r = super::settings_file::refused(&loaded.parsed);
                            (loaded.parsed.settings, r)
                        }
                        Err(e) => {
                            error!("{e}; keeping the settings in force");
                            continue;
                        }
                    };
                    // A new settings sequence (the handler moved the link) reports to its own
                    // status file from now on.
                    let retargeted = match (&self.vm_status, linked_sequence(&self.path)) {
                        (Some(vm), Some(seq)) => {
                            vm.retarget(seq);
                            Some(vm.clone())
                        }
                        _ => None,
                    };
                    if new.logging != settings.logging {
                        warn!("loggingSettings changed: the log sinks are set up at start; restart the agent to apply them");
                    }
                    let agent_wide_changed = AgentWide::of(&new) != AgentWide::of(&settings);
                    // Whether the gate will report by itself (a certificate started or stopped).
                    let mut reported = false;
                    if agent_wide_changed {
                        warn!("identity or agent-wide settings changed: restarting every watcher");
                        self.stop(running).await;
                        running = self.start(&new, &new_refused)?;
                        *gate.lock().expect("gate lock") = running.agent.gate().clone();
                        reported = true;
                    } else if let Some(summary) = running.agent.reload(new.clone()).await {
                        info!(started = ?summary.started, stopped = ?summary.stopped, kept = summary.kept, "settings applied");
                        reported = !summary.started.is_empty() || !summary.stopped.is_empty();
                        // Entries refused before and now fixed, removed or still refused.
                        if new_refused != refused {
                            let gate = running.agent.gate();
                            for (id, _) in &refused {
                                gate.forget(id);
                            }
                            for (id, why) in &new_refused {
                                gate.refused(id, why);
                            }
                            reported = true;
                        }
                    }
                    settings = new;
                    refused = new_refused;
                    // The same certificates: the new sequence's status file gets the status now.
                    if let Some(vm) = &retargeted
                        && !reported
                    {
                        vm.report(&running.agent.gate().view().status);
                    }
                }
            }
        }
        info!("stopping: finishing writes in progress");
        // A second signal while stopping ends the process at once.
        tokio::select! {
            _ = self.stop(running) => {}
            _ = term.recv() => { warn!("second signal: exiting now"); return Ok(ExitCode::from(1)); }
            _ = int.recv() => { warn!("second signal: exiting now"); return Ok(ExitCode::from(1)); }
        }
        cancel.cancel();
        if let Some(server) = server {
            let _ = server.await;
        }
        info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

/// The settings every watcher shares: a change in any of them restarts every watcher (a
/// change in `certificates` alone is applied watcher by watcher). Every field of [`Settings`]
/// is named here, so a new one is a compile error until someone decides which kind it is.
#[derive(PartialEq)]
struct AgentWide<'a> {
    schema: akv_sync_config::Schema,
    polling_interval: std::time::Duration,
    require_initial_sync: bool,
    acl_enabled: bool,
    identity: &'a akv_sync_config::Identity,
    agent: &'a akv_sync_config::AgentSettings,
}

impl<'a> AgentWide<'a> {
    fn of(s: &'a Settings) -> Self {
        let Settings {
            // Where the settings sat in the file: no effect on the agent.
            wrapper: _,
            schema,
            polling_interval,
            require_initial_sync,
            acl_enabled,
            // Applied watcher by watcher (`Agent::reload`).
            certificates: _,
            identity,
            // Set up once at start (see the warning in `run`).
            logging: _,
            agent,
        } = s;
        AgentWide {
            schema: *schema,
            polling_interval: *polling_interval,
            require_initial_sync: *require_initial_sync,
            acl_enabled: *acl_enabled,
            identity,
            agent,
        }
    }
}
