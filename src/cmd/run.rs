//! `akv-sync run`: the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use akv_sync_actors::{Agent, NoObserver, StatusSink};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::cmd::common::ports;
use crate::cmd::load::{load_settings, log_parsed};
use crate::logging::{self, LogArgs};
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
    #[arg(long, default_value = logging::DEFAULT_LOG_DIR, env = "AKV_SYNC_LOG_DIR")]
    pub log_dir: PathBuf,
    /// Log to stderr only.
    #[arg(long)]
    pub no_log_file: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let parsed = match load_settings(&args.settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("akv-sync: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let log_dir = (!args.no_log_file).then_some(args.log_dir.as_path());
    let _logs = logging::init(&args.log, log_dir, parsed.settings.logging.as_ref());
    log_parsed(&parsed);
    let mut sinks: Vec<Arc<dyn StatusSink>> = vec![Arc::new(LogStatus), Arc::new(Systemd::default())];
    if let (Some(dir), Some(seq)) = (&args.status_dir, args.sequence) {
        sinks.push(Arc::new(VmAgentStatus::new(dir, seq, "Enable")));
    }
    let sink: Arc<dyn StatusSink> = Arc::new(Fanout(sinks));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(daemon(args.settings, parsed.settings, sink))
}

async fn daemon(
    path: PathBuf,
    mut settings: akv_sync_config::Settings,
    sink: Arc<dyn StatusSink>,
) -> anyhow::Result<ExitCode> {
    let mut agent = Agent::start(&settings, ports(&settings, sink.clone(), Arc::new(NoObserver))?);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                info!(settings = %path.display(), "SIGHUP: re-reading settings");
                let new = match load_settings(&path) {
                    Ok(p) => p.settings,
                    Err(e) => {
                        error!("{e}; keeping the settings in force");
                        continue;
                    }
                };
                if new.identity != settings.identity || new.acl_enabled != settings.acl_enabled
                    || new.agent != settings.agent || new.polling_interval != settings.polling_interval
                    || new.require_initial_sync != settings.require_initial_sync
                {
                    warn!("identity or agent-wide settings changed: restarting every watcher");
                    agent.shutdown().await;
                    agent = Agent::start(&new, ports(&new, sink.clone(), Arc::new(NoObserver))?);
                } else if let Some(summary) = agent.reload(new.clone()).await {
                    info!(started = ?summary.started, stopped = ?summary.stopped, kept = summary.kept, "settings applied");
                }
                settings = new;
            }
        }
    }
    info!("stopping: finishing writes in progress");
    // A second signal while stopping ends the process at once.
    tokio::select! {
        _ = agent.shutdown() => {}
        _ = term.recv() => { warn!("second signal: exiting now"); return Ok(ExitCode::from(1)); }
        _ = int.recv() => { warn!("second signal: exiting now"); return Ok(ExitCode::from(1)); }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}
