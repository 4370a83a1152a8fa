//! `akv-sync handler install|enable|disable|uninstall|update`: the VM-agent handler contract
//! (`HandlerManifest.json`), so akv-sync installs where the original extension does.
//!
//! The VM agent runs these commands from the extension's folder, which holds
//! `HandlerEnvironment.json` naming the log, config and status folders. `enable` reads
//! `config/<seq>.settings` (`ConfigSequenceNumber` from the environment, else the newest),
//! writes `status/<seq>.status` (`transitioning`), starts the long-running agent
//! (`akv-sync run`, detached, its pid in `config/akv-sync.pid`) and returns at once; the agent
//! then moves the status file to `success` or `error`. `disable` stops the agent; `uninstall`
//! stops it and leaves the installed certificates in place, as the original does.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use akv_sync_actors::{State, Status};
use anyhow::Context;
use serde::Deserialize;

use crate::status::VmAgentStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub op: Op,
    /// Folder holding HandlerEnvironment.json (default: the current folder, where the VM agent
    /// runs handler commands).
    #[arg(long, env = "AKV_SYNC_HANDLER_DIR", global = true)]
    pub handler_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Op {
    /// Prepare the extension (nothing to do: the binary is self-contained).
    Install,
    /// Read the newest settings, report `transitioning` and start the agent.
    Enable,
    /// Stop the agent.
    Disable,
    /// Stop the agent; installed certificates stay.
    Uninstall,
    /// Called by the VM agent on upgrade; `enable` follows.
    Update,
}

/// The parts of `HandlerEnvironment.json` we use.
#[derive(Debug, Clone, Deserialize)]
pub struct HandlerEnvironment {
    #[serde(rename = "logFolder")]
    pub log_folder: PathBuf,
    #[serde(rename = "configFolder")]
    pub config_folder: PathBuf,
    #[serde(rename = "statusFolder")]
    pub status_folder: PathBuf,
}

#[derive(Deserialize)]
struct EnvEntry {
    #[serde(rename = "handlerEnvironment")]
    handler_environment: HandlerEnvironment,
}

/// Read `HandlerEnvironment.json` from `dir`.
pub fn read_environment(dir: &Path) -> anyhow::Result<HandlerEnvironment> {
    let path = dir.join("HandlerEnvironment.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let entries: Vec<EnvEntry> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a HandlerEnvironment array", path.display()))?;
    entries
        .into_iter()
        .next()
        .map(|e| e.handler_environment)
        .with_context(|| format!("{} is an empty array", path.display()))
}

/// `ConfigSequenceNumber`, else the highest `<n>.settings` in the config folder.
pub fn sequence_number(config: &Path) -> anyhow::Result<u64> {
    if let Some(n) = std::env::var("ConfigSequenceNumber")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return Ok(n);
    }
    std::fs::read_dir(config)
        .with_context(|| format!("cannot list {}", config.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".settings"))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .with_context(|| format!("no <n>.settings file in {}", config.display()))
}

fn pid_file(env: &HandlerEnvironment) -> PathBuf {
    env.config_folder.join("akv-sync.pid")
}

/// The pid of our running agent, if the pid file names a live akv-sync process.
fn running_agent(env: &HandlerEnvironment) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(env))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Guard against a reused pid: the process must be akv-sync running `run`.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args.iter().any(|a| a.ends_with(b"akv-sync")) && args.iter().any(|a| *a == b"run");
    ours.then_some(pid)
}

/// Whether `pid` runs; a zombie does not (where nobody reaps orphans, an exited agent stays
/// a zombie, and `kill(pid, 0)` would still succeed on it).
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn stop_agent(env: &HandlerEnvironment) -> anyhow::Result<bool> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Some(pid) = running_agent(env) else {
        let _ = std::fs::remove_file(pid_file(env));
        return Ok(false);
    };
    let pid = Pid::from_raw(pid);
    kill(pid, Signal::SIGTERM).context("cannot signal the agent")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The agent is not our child: poll for its exit (it finishes writes in progress first).
    while Instant::now() < deadline {
        if !is_running(pid.as_raw()) {
            let _ = std::fs::remove_file(pid_file(env));
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = std::fs::remove_file(pid_file(env));
    Ok(true)
}

fn report(
    env: &HandlerEnvironment,
    seq: u64,
    operation: &str,
    state: State,
    message: String,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&env.status_folder)?;
    VmAgentStatus::new(&env.status_folder, seq, operation)
        .write(&Status::new(state, message))
        .with_context(|| {
            format!(
                "cannot write the status file in {}",
                env.status_folder.display()
            )
        })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = match args.handler_dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    let env = read_environment(&dir)?;
    match args.op {
        Op::Install | Op::Update => Ok(ExitCode::SUCCESS),
        Op::Enable => enable(&env),
        Op::Disable => {
            let stopped = stop_agent(&env)?;
            if let Ok(seq) = sequence_number(&env.config_folder) {
                let msg = if stopped {
                    "disabled: the agent stopped"
                } else {
                    "disabled: the agent was not running"
                };
                report(&env, seq, "Disable", State::Success, msg.into())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Op::Uninstall => {
            stop_agent(&env)?;
            if let Ok(seq) = sequence_number(&env.config_folder) {
                report(
                    &env,
                    seq,
                    "Uninstall",
                    State::Success,
                    "uninstalled: the agent stopped; installed certificates were left in place"
                        .into(),
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn enable(env: &HandlerEnvironment) -> anyhow::Result<ExitCode> {
    let seq = sequence_number(&env.config_folder)?;
    let settings_path = env.config_folder.join(format!("{seq}.settings"));
    if let Err(e) = super::settings_file::read(&settings_path, false) {
        let message = match &e {
            super::settings_file::SettingsFileError::Invalid { errors, .. } => {
                let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                format!(
                    "invalid settings in {}: {}",
                    settings_path.display(),
                    list.join("; ")
                )
            }
            other => other.to_string(),
        };
        eprintln!("akv-sync: {message}");
        report(env, seq, "Enable", State::Error, message)?;
        return Ok(ExitCode::from(1));
    }
    // A new sequence replaces the running agent.
    stop_agent(env)?;
    report(
        env,
        seq,
        "Enable",
        State::Transitioning,
        "starting the agent".into(),
    )?;
    std::fs::create_dir_all(&env.log_folder).ok();
    let exe = std::env::current_exe().context("cannot find the akv-sync binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--settings")
        .arg(&settings_path)
        .arg("--status-dir")
        .arg(&env.status_folder)
        .arg("--sequence")
        .arg(seq.to_string())
        .arg("--log-dir")
        .arg(&env.log_folder)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Detach: a session of its own, so the VM agent's command ending does not end it.
    // SAFETY: setsid is async-signal-safe and the closure touches no other state.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().context("cannot start the agent")?;
    std::fs::write(pid_file(env), child.id().to_string())?;
    println!(
        "akv-sync: agent started (pid {}) for settings sequence {seq}",
        child.id()
    );
    Ok(ExitCode::SUCCESS)
}
