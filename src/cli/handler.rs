//! `akv-sync handler install|enable|disable|uninstall|update`: the VM-agent handler contract
//! (`HandlerManifest.json`), so akv-sync installs where the original extension does.
//!
//! The VM agent runs these commands from the extension's folder, which holds
//! `HandlerEnvironment.json` naming the log, config and status folders, and re-runs `enable`
//! on every goal state and every start of its own. `enable` reads `config/<seq>.settings`
//! (`ConfigSequenceNumber` from the environment, else the newest) and keeps one agent
//! (`akv-sync run`) running for it, reading its settings through the link
//! `config/akv-sync.settings`: where systemd is PID 1 as the unit `akvvm_service.service`
//! (`Restart=on-failure`), elsewhere under a supervisor of its own (`handler supervise`,
//! detached; it restarts a failed agent with backoff; pids in `config/akv-sync.supervisor.pid`
//! and `config/akv-sync.pid`). The same sequence with the service healthy changes nothing; a
//! new one moves the link and sends SIGHUP (certificates already current are kept). The agent
//! moves the status file to `success` or `error`. `disable` stops the agent; `uninstall` also
//! removes the unit and leaves the installed certificates in place, as the original does.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub use super::handler_env::{HandlerEnvironment, read_environment};

use akv_sync_actors::{State, Status};
use anyhow::Context;

use super::service;
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

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Op {
    /// Prepare the extension (nothing to do: the binary is self-contained).
    Install,
    /// Read the newest settings and keep the agent running for them: start it (systemd unit
    /// akvvm_service.service, or a supervisor of its own without systemd), or — for a new
    /// settings sequence — make the running agent re-read them; nothing restarts otherwise.
    Enable,
    /// Stop the agent.
    Disable,
    /// Stop the agent and remove its unit; installed certificates stay.
    Uninstall,
    /// Called by the VM agent on upgrade (after the old version's disable): starts this
    /// version's agent when its settings are in place; `enable` follows.
    Update,
    /// Write the systemd drop-in that makes the configured store folders writable under the
    /// unit's ProtectSystem=strict (`ReadWritePaths=`), and reload systemd's units.
    Sandbox(SandboxArgs),
    /// The supervisor `enable` starts where systemd is not PID 1 (internal).
    #[command(hide = true)]
    Supervise,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Settings file whose store folders to open (default: the handler's settings in force).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// The unit the drop-in is for (the packaged unit is akv-sync.service).
    #[arg(long, default_value = service::UNIT)]
    pub unit: String,
    /// Folder of unit files; the drop-in goes to `<DIR>/<UNIT>.d/50-akv-sync-stores.conf`
    /// (and, for akvvm_service.service from the handler's settings, the unit itself to `<DIR>`).
    #[arg(long, default_value = service::UNIT_DIR)]
    pub unit_dir: PathBuf,
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

fn supervisor_pid_file(env: &HandlerEnvironment) -> PathBuf {
    env.config_folder.join("akv-sync.supervisor.pid")
}

/// The pid in `file`, if it names a live akv-sync process with `word` among its arguments
/// (guards against a reused pid).
fn live_pid(file: &Path, word: &[u8]) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args.iter().any(|a| a.ends_with(b"akv-sync")) && args.contains(&word);
    (ours && is_running(pid)).then_some(pid)
}

/// The pid of our running agent.
fn running_agent(env: &HandlerEnvironment) -> Option<i32> {
    live_pid(&pid_file(env), b"run")
}

/// The pid of our running supervisor.
fn running_supervisor(env: &HandlerEnvironment) -> Option<i32> {
    live_pid(&supervisor_pid_file(env), b"supervise")
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

/// SIGTERM `pid` and wait (at most 30 s, then SIGKILL) for it to end.
fn terminate(pid: i32) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(pid);
    kill(pid, Signal::SIGTERM).context("cannot signal the agent")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Not our child: poll for its exit (the agent finishes writes in progress first).
    while Instant::now() < deadline {
        if !is_running(pid.as_raw()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = kill(pid, Signal::SIGKILL);
    Ok(())
}

/// Stop the supervisor (it stops its agent) and any agent left without one; whether
/// something ran.
fn stop_agent(env: &HandlerEnvironment) -> anyhow::Result<bool> {
    let mut stopped = false;
    if let Some(pid) = running_supervisor(env) {
        terminate(pid)?;
        stopped = true;
    }
    if let Some(pid) = running_agent(env) {
        terminate(pid)?;
        stopped = true;
    }
    let _ = std::fs::remove_file(supervisor_pid_file(env));
    let _ = std::fs::remove_file(pid_file(env));
    Ok(stopped)
}

/// Whether the installed unit runs this extension folder's agent (after an upgrade it runs the
/// new version's, which the old version's `disable` and `uninstall` leave alone).
fn unit_is_ours(env: &HandlerEnvironment) -> bool {
    std::fs::read_to_string(Path::new(service::UNIT_DIR).join(service::UNIT))
        .is_ok_and(|u| u.contains(&service::settings_link(env).display().to_string()))
}

fn stop_service(env: &HandlerEnvironment) -> anyhow::Result<bool> {
    if service::systemd_is_pid1() && unit_is_ours(env) {
        let was = service::unit_active(service::UNIT);
        service::systemctl(&["stop", service::UNIT])?;
        Ok(stop_agent(env)? || was)
    } else {
        stop_agent(env)
    }
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
    if let Op::Sandbox(a) = &args.op
        && a.settings.is_some()
    {
        return sandbox(None, a);
    }
    let env = read_environment(&dir)?;
    match args.op {
        Op::Install => Ok(ExitCode::SUCCESS),
        // The new version's `update` runs after the old version's `disable` and before its
        // `uninstall` (which stops only the old version's agent): starting the new agent here
        // shortens the gap to the time between those two commands. Without settings yet,
        // `enable` starts it.
        Op::Update => match sequence_number(&env.config_folder) {
            Ok(_) => enable(&env),
            Err(_) => Ok(ExitCode::SUCCESS),
        },
        Op::Enable => enable(&env),
        Op::Sandbox(a) => sandbox(Some(&env), &a),
        Op::Supervise => {
            service::supervise(&env, &pid_file(&env))?;
            Ok(ExitCode::SUCCESS)
        }
        Op::Disable => {
            let stopped = stop_service(&env)?;
            if service::systemd_is_pid1() && unit_is_ours(&env) {
                let _ = service::systemctl(&["disable", service::UNIT]);
            }
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
            stop_service(&env)?;
            if service::systemd_is_pid1() && unit_is_ours(&env) {
                let _ = service::systemctl(&["disable", service::UNIT]);
                let dir = Path::new(service::UNIT_DIR);
                let _ = std::fs::remove_file(dir.join(service::UNIT));
                let _ = std::fs::remove_dir_all(dir.join(format!("{}.d", service::UNIT)));
                service::systemctl(&["daemon-reload"])?;
            }
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

/// `handler sandbox`: the stores drop-in for `--settings` (any unit), or for the handler's
/// settings in force (then, for akvvm_service.service, the unit file too).
fn sandbox(env: Option<&HandlerEnvironment>, a: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let (path, seq) = match (&a.settings, env) {
        (Some(p), _) => (p.clone(), None),
        (None, Some(env)) => {
            let seq = sequence_number(&env.config_folder)?;
            (env.config_folder.join(format!("{seq}.settings")), Some(seq))
        }
        (None, None) => anyhow::bail!("no settings: give --settings or a handler folder"),
    };
    let parsed = super::settings_file::read(&path, false)
        .map_err(|e| anyhow::anyhow!(e.detail()))?
        .parsed;
    let mut changed = service::write_stores_drop_in(&a.unit_dir, &a.unit, &path, &parsed.settings)?;
    if let (Some(env), Some(seq), true) = (env, seq, a.unit == service::UNIT) {
        let exe = std::env::current_exe().context("cannot find the akv-sync binary")?;
        changed |= service::write_if_changed(
            &a.unit_dir.join(service::UNIT),
            &service::unit_text(&exe, env, seq),
        )?;
    }
    let drop_in = a
        .unit_dir
        .join(format!("{}.d", a.unit))
        .join(service::STORES_DROP_IN);
    if changed && service::systemd_is_pid1() && a.unit_dir == Path::new(service::UNIT_DIR) {
        service::systemctl(&["daemon-reload"])?;
        println!(
            "akv-sync: wrote {}; systemd reloaded; restart {} for it to apply",
            drop_in.display(),
            a.unit
        );
    } else if changed {
        println!("akv-sync: wrote {}", drop_in.display());
    } else {
        println!("akv-sync: {} is up to date", drop_in.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn enable(env: &HandlerEnvironment) -> anyhow::Result<ExitCode> {
    let seq = sequence_number(&env.config_folder)?;
    let settings_path = env.config_folder.join(format!("{seq}.settings"));
    let parsed = match super::settings_file::read(&settings_path, false) {
        Ok(loaded) => loaded.parsed,
        Err(e) => {
            let message = e.detail();
            eprintln!("akv-sync: {message}");
            // The agent in force (if any) keeps running on the last good settings.
            report(env, seq, "Enable", State::Error, message)?;
            return Ok(ExitCode::from(1));
        }
    };
    std::fs::create_dir_all(&env.log_folder).ok();
    if service::systemd_is_pid1() {
        return enable_unit(env, seq, &settings_path, &parsed.settings);
    }
    let linked = service::linked_sequence(env);
    if running_supervisor(env).is_some() {
        if linked == Some(seq) {
            println!(
                "akv-sync: the agent already runs for settings sequence {seq} (supervised by akv-sync, no systemd); nothing restarted"
            );
            return Ok(ExitCode::SUCCESS);
        }
        report(
            env,
            seq,
            "Enable",
            State::Transitioning,
            format!("applying settings sequence {seq}"),
        )?;
        service::link_sequence(env, seq)?;
        let sup = running_supervisor(env).context("the supervisor ended")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sup),
            nix::sys::signal::Signal::SIGHUP,
        )
        .context("cannot signal the supervisor")?;
        println!(
            "akv-sync: settings sequence {seq} applied to the running agent (SIGHUP); certificates already current are kept"
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Nothing supervised runs: an agent of an older akv-sync (or one left alone) goes first.
    stop_agent(env)?;
    report(
        env,
        seq,
        "Enable",
        State::Transitioning,
        "starting the agent".into(),
    )?;
    service::link_sequence(env, seq)?;
    let exe = std::env::current_exe().context("cannot find the akv-sync binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("handler")
        .arg("--handler-dir")
        .arg(handler_dir_of(env))
        .arg("supervise")
        .env_remove("ConfigSequenceNumber")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
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
    let mut child = cmd.spawn().context("cannot start the supervisor")?;
    std::fs::write(supervisor_pid_file(env), child.id().to_string())?;
    // Wait for `started <pid>`: the agent runs and its pid file is written.
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let agent = line
        .trim()
        .strip_prefix("started ")
        .with_context(|| "the supervisor ended before starting the agent".to_string())?;
    println!(
        "akv-sync: agent started (pid {agent}) for settings sequence {seq}; systemd is not PID 1, so akv-sync supervises it itself (restarts with backoff {} s to {} s; log in {})",
        service::BACKOFF_FIRST.as_secs(),
        service::BACKOFF_MAX.as_secs(),
        env.log_folder.join("akv-sync-supervisor.log").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The folder holding `HandlerEnvironment.json`: the config folder's parent, as the VM agent
/// lays it out, else the current folder.
fn handler_dir_of(env: &HandlerEnvironment) -> PathBuf {
    match std::env::current_dir() {
        Ok(d) if d.join("HandlerEnvironment.json").is_file() => d,
        _ => env
            .config_folder
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// Where systemd is PID 1: the unit and its stores drop-in written, systemd reloaded when
/// they changed; the unit started, or reloaded for a new sequence, or restarted when the
/// sandbox changed (a running process keeps the namespace it started with).
fn enable_unit(
    env: &HandlerEnvironment,
    seq: u64,
    settings_path: &Path,
    settings: &akv_sync_config::Settings,
) -> anyhow::Result<ExitCode> {
    let dir = Path::new(service::UNIT_DIR);
    let exe = std::env::current_exe().context("cannot find the akv-sync binary")?;
    let linked = service::linked_sequence(env);
    service::link_sequence(env, seq)?;
    let unit_changed = service::write_if_changed(
        &dir.join(service::UNIT),
        &service::unit_text(&exe, env, seq),
    )?;
    let sandbox_changed =
        service::write_stores_drop_in(dir, service::UNIT, settings_path, settings)?;
    if unit_changed || sandbox_changed {
        service::systemctl(&["daemon-reload"])?;
    }
    service::systemctl(&["enable", service::UNIT])?;
    let active = service::unit_active(service::UNIT);
    let what = if !active {
        report(
            env,
            seq,
            "Enable",
            State::Transitioning,
            "starting the agent".into(),
        )?;
        service::systemctl(&["start", "--no-block", service::UNIT])?;
        "started"
    } else if sandbox_changed {
        report(
            env,
            seq,
            "Enable",
            State::Transitioning,
            format!("applying settings sequence {seq} (new store folders: restarting)"),
        )?;
        service::systemctl(&["restart", "--no-block", service::UNIT])?;
        "restarted for new store folders"
    } else if linked != Some(seq) {
        report(
            env,
            seq,
            "Enable",
            State::Transitioning,
            format!("applying settings sequence {seq}"),
        )?;
        service::systemctl(&["reload", service::UNIT])?;
        "reloaded (SIGHUP)"
    } else {
        "already running; nothing restarted"
    };
    println!(
        "akv-sync: {} {what} for settings sequence {seq}",
        service::UNIT
    );
    Ok(ExitCode::SUCCESS)
}
