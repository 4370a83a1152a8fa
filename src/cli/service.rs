//! The handler's long-running service (issue 17, points 1 and 2): the systemd unit
//! `akvvm_service.service` where systemd is PID 1, the handler's own supervisor where it is
//! not, and the sandbox drop-in that opens the configured store folders to a unit run with
//! `ProtectSystem=strict`.
//!
//! The agent always reads `config/akv-sync.settings`, a link to the `<seq>.settings` in force:
//! a new sequence moves the link and sends SIGHUP, so certificates already current are kept
//! (their watchers stay, nothing is downloaded again), and the agent reports to the status
//! file of the sequence the link names.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use akv_sync_config::Settings;
use anyhow::Context;

use super::handler_env::HandlerEnvironment;

/// The unit's name, the original extension's (operators check `systemctl status akvvm_service`).
pub const UNIT: &str = "akvvm_service.service";
/// Where units written by the handler go.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The drop-in holding the store folders' `ReadWritePaths=`.
pub const STORES_DROP_IN: &str = "50-akv-sync-stores.conf";

/// The supervisor's first wait before restarting an agent that failed, doubled per failure in
/// a row up to [`BACKOFF_MAX`]; an agent that ran for [`BACKOFF_MAX`] starts the count again.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How the agent yields CPU and disk to the services the certificates are for (issue 17
/// point 3, "courteous on busy VMs"; measured in BENCHMARKS.md, "Busy VMs"). One value for the
/// packaged unit, the handler's unit and the handler's own supervisor, so they cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Courtesy {
    /// `Nice=`: the scheduler weight of each of the agent's threads (10: about a tenth of a
    /// nice-0 thread's), what counts where there is no CPU controller.
    pub nice: i32,
    /// `CPUWeight=`: the unit's cgroup share against other units (default 100).
    pub cpu_weight: u32,
    /// `IOSchedulingClass=best-effort`, `IOSchedulingPriority=` (0 first … 7 last).
    pub io_priority: u8,
}

/// The agent's priorities (see [`Courtesy`]).
pub const COURTESY: Courtesy = Courtesy {
    nice: 10,
    cpu_weight: 20,
    io_priority: 7,
};

/// `ioprio_set`'s class of best-effort I/O (`IOPRIO_CLASS_BE`).
const IOPRIO_CLASS_BE: i64 = 2;
/// `IOPRIO_WHO_PROCESS`.
const IOPRIO_WHO_PROCESS: i64 = 1;
/// The class's position in an I/O priority value (`IOPRIO_CLASS_SHIFT`).
const IOPRIO_CLASS_SHIFT: i64 = 13;

impl Courtesy {
    /// The `[Service]` lines of a unit that runs the agent.
    pub fn unit_lines(&self) -> String {
        format!(
            "Nice={}\nCPUWeight={}\nIOSchedulingClass=best-effort\nIOSchedulingPriority={}\n",
            self.nice, self.cpu_weight, self.io_priority
        )
    }

    /// Give the calling thread (in a child between fork and exec: the process to be) this
    /// nice value and best-effort I/O at this priority: what systemd does for `Nice=` and
    /// `IOScheduling*=`. Threads created later inherit both. Async-signal-safe (two system
    /// calls, no allocation), so it may run in `pre_exec`.
    pub fn apply_to_this_thread(&self) -> std::io::Result<()> {
        // SAFETY: setpriority has no memory-safety preconditions; `0` names the caller.
        if unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, self.nice) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let value = (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | i64::from(self.io_priority);
        // SAFETY: ioprio_set takes three integers and touches no memory of ours; `0` names
        // the caller.
        if unsafe { nix::libc::syscall(nix::libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) }
            != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Whether systemd is the init system (`sd_booted()`: `/run/systemd/system` exists).
pub fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The link the agent reads its settings through.
pub fn settings_link(env: &HandlerEnvironment) -> PathBuf {
    env.config_folder.join("akv-sync.settings")
}

/// The sequence `name` (`<n>.settings`) stands for.
pub fn sequence_of_name(name: &Path) -> Option<u64> {
    name.file_name()?
        .to_str()?
        .strip_suffix(".settings")?
        .parse()
        .ok()
}

/// The sequence the settings link names now, if any.
pub fn linked_sequence(env: &HandlerEnvironment) -> Option<u64> {
    sequence_of_name(&std::fs::read_link(settings_link(env)).ok()?)
}

/// Point the settings link at `<seq>.settings` (a new link renamed over the old one: the
/// agent never finds it missing).
pub fn link_sequence(env: &HandlerEnvironment, seq: u64) -> anyhow::Result<()> {
    let link = settings_link(env);
    let tmp = env
        .config_folder
        .join(format!(".akv-sync.settings.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("{seq}.settings"), &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("cannot replace {}", link.display()))
}

/// The `run` arguments of the agent the handler starts.
pub fn agent_args(env: &HandlerEnvironment, seq: u64) -> Vec<String> {
    vec![
        "run".into(),
        "--settings".into(),
        settings_link(env).display().to_string(),
        "--status-dir".into(),
        env.status_folder.display().to_string(),
        "--sequence".into(),
        seq.to_string(),
        "--log-dir".into(),
        env.log_folder.display().to_string(),
    ]
}

/// A path as a systemd unit-file word: `\` escaped, and quoted when it holds blanks.
fn unit_word(s: &str) -> String {
    let e = s.replace('\\', "\\\\").replace('%', "%%");
    if e.contains(char::is_whitespace) || e.contains('"') {
        format!("\"{}\"", e.replace('"', "\\\""))
    } else {
        e
    }
}

/// The handler's unit: the packaged unit's priorities ([`COURTESY`]) and hardening, with the
/// extension's own folders writable. The stores come in the [`STORES_DROP_IN`] drop-in.
pub fn unit_text(exe: &Path, env: &HandlerEnvironment, seq: u64) -> String {
    let exec: Vec<String> = std::iter::once(exe.display().to_string())
        .chain(agent_args(env, seq))
        .map(|w| unit_word(&w))
        .collect();
    let writable: Vec<String> = [&env.config_folder, &env.status_folder, &env.log_folder]
        .iter()
        .map(|p| unit_word(&format!("-{}", p.display())))
        .collect();
    format!(
        "# Written by `akv-sync handler enable`; rewritten on every enable.\n\
[Unit]\n\
Description=akv-sync (KeyVaultForLinux): Azure Key Vault certificates on this host\n\
Wants=network-online.target\n\
After=network-online.target\n\
\n\
[Service]\n\
Type=notify\n\
NotifyAccess=main\n\
ExecStart={exec}\n\
ExecReload=/bin/kill -HUP $MAINPID\n\
Restart=on-failure\n\
RestartSec=5s\n\
TimeoutStartSec=30min\n\
TimeoutStopSec=60s\n\
LimitNOFILE=65536\n\
{courtesy}\
NoNewPrivileges=yes\n\
ProtectSystem=strict\n\
ReadWritePaths=/var/lib/waagent /var/log/azure {writable}\n\
ProtectHome=yes\n\
PrivateTmp=yes\n\
PrivateDevices=yes\n\
ProtectKernelTunables=yes\n\
ProtectKernelModules=yes\n\
ProtectKernelLogs=yes\n\
ProtectControlGroups=yes\n\
ProtectClock=yes\n\
ProtectHostname=yes\n\
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
RestrictNamespaces=yes\n\
RestrictRealtime=yes\n\
RestrictSUIDSGID=yes\n\
LockPersonality=yes\n\
MemoryDenyWriteExecute=yes\n\
SystemCallArchitectures=native\n\
SystemCallFilter=@system-service\n\
UMask=0077\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n",
        exec = exec.join(" "),
        writable = writable.join(" "),
        courtesy = COURTESY.unit_lines(),
    )
}

/// The folders a unit with `ProtectSystem=strict` must make writable for `settings`: each
/// store folder (created first, with the store's own checks, so that it exists when the
/// namespace is set up), and — with ACLs and `traverseAncestors` on — each folder above one
/// that the traverse entries change now.
pub fn writable_folders(settings: &Settings) -> Vec<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for cert in &settings.certificates {
        // A folder that cannot be made is reported by the agent, naming it.
        let _ = crate::store::Store::open(&cert.store);
        out.insert(cert.store.clone());
        if settings.acl_enabled && settings.agent.traverse_ancestors {
            let Ok(grants) = crate::store::resolve_grants(&cert.acls) else {
                continue;
            };
            let ids: Vec<_> = grants.iter().map(|g| (g.kind, g.id)).collect();
            for b in crate::store::blocked_ancestors(&cert.store, &ids) {
                out.insert(b.folder);
            }
        }
    }
    out.into_iter().collect()
}

/// The drop-in opening `folders` (`-`: a folder removed meanwhile does not stop the unit).
pub fn stores_drop_in(source: &Path, folders: &[PathBuf]) -> String {
    let mut text = format!(
        "# Written by akv-sync from {}: the store folders (and the folders above them that\n\
# get traverse ACL entries) stay writable under ProtectSystem=strict.\n[Service]\n",
        source.display()
    );
    for f in folders {
        text.push_str(&format!(
            "ReadWritePaths={}\n",
            unit_word(&format!("-{}", f.display()))
        ));
    }
    text
}

/// Write `path` when its content differs; whether it did.
pub fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Write the stores drop-in of `unit` into `unit_dir`; whether it changed.
pub fn write_stores_drop_in(
    unit_dir: &Path,
    unit: &str,
    source: &Path,
    settings: &Settings,
) -> anyhow::Result<bool> {
    let path = unit_dir.join(format!("{unit}.d")).join(STORES_DROP_IN);
    write_if_changed(&path, &stores_drop_in(source, &writable_folders(settings)))
}

/// `systemctl ARGS`, failing with its stderr.
pub fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .context("cannot run systemctl")?;
    anyhow::ensure!(
        out.status.success(),
        "systemctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Whether `systemctl is-active UNIT` says active (or activating, reloading).
pub fn unit_active(unit: &str) -> bool {
    std::process::Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .status()
        .is_ok_and(|s| s.success())
}

fn supervisor_log(env: &HandlerEnvironment, line: &str) {
    let path = env.log_folder.join("akv-sync-supervisor.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let _ = writeln!(f, "{now} {line}");
    }
}

/// Write `pid` to `path` atomically (readers never see a half-written number).
fn write_pid(path: &Path, pid: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, path)
}

/// `akv-sync handler supervise`: run the agent, restart it when it fails (exit code other
/// than 0, or killed) after [`BACKOFF_FIRST`] doubling to [`BACKOFF_MAX`], pass SIGHUP on,
/// and stop it on SIGTERM/SIGINT. Prints `started <pid>` once the first agent runs and its
/// pid file is written, then stops using stdout.
pub fn supervise(env: &HandlerEnvironment, agent_pid_file: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let exe = std::env::current_exe().context("cannot find the akv-sync binary")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut backoff = BACKOFF_FIRST;
        let mut announced = false;
        loop {
            let seq = linked_sequence(env).context("the settings link names no sequence")?;
            let mut cmd = tokio::process::Command::new(&exe);
            // The unit's priorities (systemd is not there to set them). A system that refuses
            // them (a seccomp filter) still gets its certificates.
            // SAFETY: `apply_to_this_thread` is async-signal-safe (two system calls).
            unsafe {
                cmd.pre_exec(|| {
                    let _ = COURTESY.apply_to_this_thread();
                    Ok(())
                });
            }
            let mut child = cmd
                .args(agent_args(env, seq))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("cannot start the agent")?;
            let pid = child.id().unwrap_or(0);
            write_pid(agent_pid_file, pid)?;
            supervisor_log(env, &format!("agent started (pid {pid}, sequence {seq})"));
            if !announced {
                announced = true;
                println!("started {pid}");
                let _ = std::io::stdout().flush();
                // The handler stops reading: from now on stdout goes nowhere.
                if let Ok(null) = std::fs::File::open("/dev/null") {
                    let _ = nix::unistd::dup2_stdout(&null);
                }
            }
            let started = Instant::now();
            let status = loop {
                tokio::select! {
                    s = child.wait() => break Some(s?),
                    _ = hup.recv() => {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGHUP,
                        );
                        supervisor_log(env, "SIGHUP passed to the agent");
                    }
                    _ = term.recv() => break None,
                    _ = int.recv() => break None,
                }
            };
            let Some(status) = status else {
                // Stop: the agent finishes its writes in progress first.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                if tokio::time::timeout(Duration::from_secs(30), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
                supervisor_log(env, "stopped");
                let _ = std::fs::remove_file(agent_pid_file);
                return Ok(());
            };
            if status.success() {
                supervisor_log(env, "agent stopped");
                let _ = std::fs::remove_file(agent_pid_file);
                return Ok(());
            }
            if started.elapsed() >= BACKOFF_MAX {
                backoff = BACKOFF_FIRST;
            }
            supervisor_log(
                env,
                &format!(
                    "agent ended ({status}); restarting it in {} s",
                    backoff.as_secs()
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}
