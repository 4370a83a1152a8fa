//! The VM-agent handler contract, as the agent calls it: a laid-out extension folder
//! (HandlerEnvironment.json, config/<seq>.settings), the handler commands in the VM agent's
//! order, the status files, and the installed certificates.

mod daemon_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use daemon_support::*;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::json;

struct Extension {
    root: PathBuf,
}

impl Extension {
    fn lay_out(env: &Env) -> Extension {
        Self::lay_out_version(env, "3.0.0")
    }

    /// The folder the VM agent makes for `version` of the extension, beside the others.
    fn lay_out_version(env: &Env, version: &str) -> Extension {
        let root = env.path(&format!(
            "Microsoft.Azure.KeyVault.KeyVaultForLinux-{version}"
        ));
        for d in ["config", "status", "logs"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let he = json!([{
            "name": "Microsoft.Azure.KeyVault.KeyVaultForLinux",
            "seqNo": "0",
            "version": 1.0,
            "handlerEnvironment": {
                "logFolder": root.join("logs"),
                "configFolder": root.join("config"),
                "statusFolder": root.join("status"),
                "heartbeatFile": root.join("heartbeat.log"),
            }
        }]);
        std::fs::write(root.join("HandlerEnvironment.json"), he.to_string()).unwrap();
        Extension { root }
    }

    /// `config/<seq>.settings` in the VM agent's own wrapper.
    fn write_settings(&self, env: &Env, seq: u64, certs: &[&str]) {
        self.write_settings_polling(env, seq, certs, "1")
    }

    fn write_settings_polling(&self, env: &Env, seq: u64, certs: &[&str], polling: &str) {
        let observed: Vec<_> = certs
            .iter()
            .map(|n| json!({ "url": format!("https://alpha.vault.azure.net/secrets/{n}"), "certificateStoreLocation": env.store }))
            .collect();
        let file = json!({ "runtimeSettings": [ { "handlerSettings": { "publicSettings": {
            "secretsManagementSettings": { "pollingIntervalInS": polling, "requireInitialSync": true, "observedCertificates": observed }
        } } } ] });
        std::fs::write(
            self.root.join(format!("config/{seq}.settings")),
            file.to_string(),
        )
        .unwrap();
    }

    fn handler(&self, env: &Env, op: &str, seq: Option<u64>) -> std::process::Output {
        let mut cmd = env.command(&["handler", op]);
        cmd.current_dir(&self.root);
        match seq {
            Some(s) => cmd.env("ConfigSequenceNumber", s.to_string()),
            None => cmd.env_remove("ConfigSequenceNumber"),
        };
        cmd.output().unwrap()
    }

    fn status(&self, seq: u64) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.root.join(format!("status/{seq}.status"))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(v[0]["status"].clone())
    }

    /// Wait (inotify on the status folder, at most 90 s) until `<seq>.status` has `state`.
    fn wait_status(&self, seq: u64, state: &str) -> serde_json::Value {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        inotify
            .add_watch(
                &self.root.join("status"),
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            )
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = self.status(seq)
                && s["status"] == state
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "status {seq} never became {state}: {:?}",
                self.status(seq)
            );
            wait_readable(&inotify, deadline);
            let _ = inotify.read_events();
        }
    }

    /// Wait until `<seq>.status` is `success` with `text` in its message.
    fn wait_message(&self, seq: u64, text: &str) -> serde_json::Value {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        inotify
            .add_watch(
                &self.root.join("status"),
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            )
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = self.status(seq)
                && s["status"] == "success"
                && s["formattedMessage"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text))
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "status {seq} never said {text}: {:?}",
                self.status(seq)
            );
            wait_readable(&inotify, deadline);
            let _ = inotify.read_events();
        }
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.root.join("config/akv-sync.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn wait_readable(inotify: &Inotify, deadline: Instant) {
    use std::os::fd::AsFd;
    let left = deadline.saturating_duration_since(Instant::now());
    let mut fds = [nix::poll::PollFd::new(
        inotify.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
}

fn alive(pid: i32) -> bool {
    // A zombie is dead too: the agent is not our child, so read its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Stops a detached supervisor and agent left behind by a failing test (the supervisor
/// first, so that it restarts nothing).
struct Reaper(PathBuf);
impl Drop for Reaper {
    fn drop(&mut self) {
        for file in ["config/akv-sync.supervisor.pid", "config/akv-sync.pid"] {
            let pid = std::fs::read_to_string(self.0.join(file))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Requests for secret `name` of vault alpha the emulator answered.
fn secret_requests(env: &Env, name: &str) -> u64 {
    let suffix = format!("/secrets/{name}");
    env.emulator
        .control()
        .counters()
        .requests
        .iter()
        .filter(|r| r.vault.as_deref() == Some("alpha"))
        .filter(|r| r.path == suffix || r.path.starts_with(&format!("{suffix}/")))
        .map(|r| r.count)
        .sum()
}

fn installed_file(store: &Path, name: &str) -> bool {
    installed(store, "alpha", name)
        .is_some_and(|v| store.join(format!("alpha.{name}.{v}")).is_file())
}

#[test]
fn the_handler_commands_run_the_agent_and_report_status_as_the_vm_agent_expects() {
    let env = Env::start();
    let control = env.emulator.control();
    let spec = CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 2,
        format: Format::Pkcs12,
        ..CertSpec::default()
    };
    for n in ["web", "api"] {
        control
            .create_certificate("alpha", n, spec.clone())
            .unwrap();
    }
    let ext = Extension::lay_out(&env);
    let _reaper = Reaper(ext.root.clone());
    ext.write_settings(&env, 0, &["web"]);

    let out = ext.handler(&env, "install", Some(0));
    assert!(
        out.status.success(),
        "install: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let started = Instant::now();
    let out = ext.handler(&env, "enable", Some(0));
    assert!(
        out.status.success(),
        "enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "enable returns well within the agent's 300 s"
    );
    let first = ext.pid().expect("the agent's pid file");
    assert!(alive(first));
    let s = ext.wait_status(0, "success");
    assert_eq!(s["operation"], "Enable");
    assert_eq!(s["name"], "Microsoft.Azure.KeyVault.KeyVaultForLinux");
    assert!(
        s["formattedMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 1")
    );
    assert!(installed_file(&env.store, "web"));
    // The agent logs to the VM agent's log folder.
    assert!(ext.root.join("logs/akv-sync.log").is_file());

    // A new settings sequence: enable (no ConfigSequenceNumber) takes the newest file.
    ext.write_settings(&env, 1, &["web", "api"]);
    let out = ext.handler(&env, "enable", None);
    assert!(
        out.status.success(),
        "second enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ext.wait_message(1, "2 of 2");
    assert!(installed_file(&env.store, "api"));
    let second = ext.pid().unwrap();
    assert_eq!(
        first, second,
        "the running agent re-reads its settings for the new sequence (SIGHUP), no restart"
    );

    let out = ext.handler(&env, "disable", None);
    assert!(out.status.success());
    assert!(!alive(second), "disable stops the agent");
    let s = ext.status(1).unwrap();
    assert_eq!(s["operation"], "Disable");
    assert_eq!(s["status"], "success");

    let out = ext.handler(&env, "uninstall", None);
    assert!(out.status.success());
    // Uninstall leaves the certificates in place, as the original does.
    assert!(installed_file(&env.store, "web") && installed_file(&env.store, "api"));
}

#[test]
fn enable_with_invalid_settings_reports_error_and_starts_nothing() {
    let env = Env::start();
    let ext = Extension::lay_out(&env);
    let _reaper = Reaper(ext.root.clone());
    std::fs::write(ext.root.join("config/0.settings"), r#"{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"secretsManagementSettings":{"observedCertificates":"https://alpha.vault.azure.net/secrets/web"}}}}]}"#).unwrap();
    let out = ext.handler(&env, "enable", Some(0));
    assert!(!out.status.success());
    let s = ext.status(0).unwrap();
    assert_eq!(s["status"], "error");
    assert!(
        s["formattedMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("observedCertificates")
    );
    assert!(ext.pid().is_none());
}

/// Wait (inotify on the config folder) until the agent's pid file names a live pid other than
/// `old`; the time it took.
fn wait_new_agent(ext: &Extension, old: i32, within: Duration) -> (i32, Duration) {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    inotify
        .add_watch(
            &ext.root.join("config"),
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .unwrap();
    let started = Instant::now();
    let deadline = started + within;
    loop {
        if let Some(pid) = ext.pid()
            && pid != old
            && alive(pid)
        {
            return (pid, started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no new agent within {within:?} (pid file: {:?})",
            ext.pid()
        );
        wait_readable(&inotify, deadline);
        let _ = inotify.read_events();
    }
}

#[test]
fn enable_again_restarts_and_downloads_nothing_a_killed_agent_comes_back_and_a_new_sequence_keeps_current_certificates()
 {
    let env = Env::start();
    let control = env.emulator.control();
    for n in ["web", "api"] {
        control
            .create_certificate("alpha", n, ec_spec_p12())
            .unwrap();
    }
    let ext = Extension::lay_out(&env);
    let _reaper = Reaper(ext.root.clone());
    // An hour between polls: every request the emulator counts comes from a (re)start or a
    // settings change, none from polling.
    ext.write_settings_polling(&env, 0, &["web"], "3600");

    // The VM agent's order on a first goal state: install, enable.
    assert!(ext.handler(&env, "install", Some(0)).status.success());
    let out = ext.handler(&env, "enable", Some(0));
    assert!(
        out.status.success(),
        "enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("supervises it itself"),
        "without systemd as PID 1 the handler says it supervises the agent: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    ext.wait_status(0, "success");
    let agent = ext.pid().unwrap();
    let web_downloads = secret_requests(&env, "web");
    assert_eq!(web_downloads, 1);
    let status_before = std::fs::read(ext.root.join("status/0.status")).unwrap();

    // The VM agent restarts (or sees the same goal state again): install, enable once more.
    assert!(ext.handler(&env, "install", Some(0)).status.success());
    let out = ext.handler(&env, "enable", Some(0));
    assert!(
        out.status.success(),
        "second enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing restarted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ext.pid(), Some(agent), "the same agent runs");
    assert!(alive(agent));
    assert_eq!(
        secret_requests(&env, "web"),
        web_downloads,
        "nothing downloaded again"
    );
    assert_eq!(
        std::fs::read(ext.root.join("status/0.status")).unwrap(),
        status_before,
        "the status stays `success`, not `transitioning`"
    );

    // A new sequence adds a certificate: the running agent re-reads its settings; `web`,
    // current, is not downloaded again.
    ext.write_settings_polling(&env, 1, &["web", "api"], "3600");
    let out = ext.handler(&env, "enable", Some(1));
    assert!(
        out.status.success(),
        "enable 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ext.wait_message(1, "2 of 2");
    assert!(installed_file(&env.store, "api"));
    assert_eq!(secret_requests(&env, "api"), 1);
    assert_eq!(
        secret_requests(&env, "web"),
        web_downloads,
        "the current certificate is kept, not downloaded again"
    );
    assert_eq!(ext.pid(), Some(agent), "applied without a restart");

    // A killed agent is running again within its first backoff (1 s), plus start-up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (respawned, took) = wait_new_agent(&ext, agent, Duration::from_secs(10));
    eprintln!("a killed agent was running again after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(alive(respawned));
    // It runs the sequence in force.
    ext.wait_status(1, "success");

    // disable stops both; nothing comes back.
    let out = ext.handler(&env, "disable", Some(1));
    assert!(out.status.success());
    assert!(!alive(respawned), "disable stops the agent");
    assert!(ext.pid().is_none());
    assert!(ext.handler(&env, "uninstall", Some(1)).status.success());
    assert!(installed_file(&env.store, "web") && installed_file(&env.store, "api"));
}

/// The VM agent's upgrade (WALinuxAgent's `handle_update`): the old version's `disable`, the
/// new one's `update`, the old one's `uninstall`, then the new one's `install` and `enable`.
/// The new agent is running from `update` on, the old `uninstall` leaves it alone, the new
/// `enable` restarts nothing, and the installed files are never touched.
#[test]
fn an_upgrade_hands_over_at_update_and_the_new_enable_restarts_nothing() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec_spec_p12())
        .unwrap();
    let old = Extension::lay_out_version(&env, "3.0.0");
    let new = Extension::lay_out_version(&env, "3.1.0");
    let (_old_reaper, _new_reaper) = (Reaper(old.root.clone()), Reaper(new.root.clone()));
    old.write_settings_polling(&env, 0, &["web"], "3600");
    new.write_settings_polling(&env, 0, &["web"], "3600");

    assert!(old.handler(&env, "install", Some(0)).status.success());
    assert!(old.handler(&env, "enable", Some(0)).status.success());
    old.wait_status(0, "success");
    let old_agent = old.pid().unwrap();
    let version = installed(&env.store, "alpha", "web").unwrap();
    let file = env.store.join(format!("alpha.web.{version}"));
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let file_inode = inode(&file);

    // Old disable: the old agent stops; the certificate stays.
    assert!(old.handler(&env, "disable", Some(0)).status.success());
    assert!(!alive(old_agent));
    assert_eq!(inode(&file), file_inode);

    // New update: the new version's agent starts at once (the gap is the time between the
    // two commands), on the settings already in its folder.
    let out = new.handler(&env, "update", Some(0));
    assert!(
        out.status.success(),
        "update: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    new.wait_status(0, "success");
    let new_agent = new.pid().expect("update started the new agent");
    assert!(alive(new_agent));
    let downloads = secret_requests(&env, "web");

    // Old uninstall stops only what is its own.
    let out = old.handler(&env, "uninstall", Some(0));
    assert!(out.status.success());
    assert!(
        alive(new_agent),
        "the old uninstall left the new agent running"
    );

    // New install and enable: nothing restarts, nothing is downloaded again.
    assert!(new.handler(&env, "install", Some(0)).status.success());
    let out = new.handler(&env, "enable", Some(0));
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing restarted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(new.pid(), Some(new_agent));
    assert_eq!(secret_requests(&env, "web"), downloads);
    assert_eq!(installed(&env.store, "alpha", "web"), Some(version));
    assert_eq!(
        inode(&file),
        file_inode,
        "the installed file was never rewritten"
    );

    assert!(new.handler(&env, "disable", Some(0)).status.success());
    assert!(!alive(new_agent));
}

/// (nice, I/O priority class, I/O priority level) of thread `tid`.
fn priorities(tid: i32) -> (i32, i64, i64) {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap();
    // Field 19 is the nice value; fields from 3 on follow the command name's `)`.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let nice: i32 = after.split(' ').nth(19 - 3).unwrap().parse().unwrap();
    // SAFETY: ioprio_get takes two integers and writes no memory of ours.
    let io = unsafe { nix::libc::syscall(nix::libc::SYS_ioprio_get, 1, tid) };
    assert!(
        io >= 0,
        "ioprio_get({tid}): {}",
        std::io::Error::last_os_error()
    );
    (nice, io >> 13, io & ((1 << 13) - 1))
}

#[test]
fn the_supervised_agent_runs_at_the_units_nice_and_io_priority() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec_spec_p12())
        .unwrap();
    let ext = Extension::lay_out(&env);
    let _reaper = Reaper(ext.root.clone());
    ext.write_settings_polling(&env, 0, &["web"], "3600");
    assert!(ext.handler(&env, "install", Some(0)).status.success());
    let out = ext.handler(&env, "enable", Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("supervises it itself"),
        "the supervisor path (systemd is not PID 1): {}",
        String::from_utf8_lossy(&out.stdout)
    );
    ext.wait_status(0, "success");
    let agent = ext.pid().unwrap();
    // Every thread of the agent (after its initial sync, its runtime and pool are up), as the
    // packaged unit's Nice=10, IOSchedulingClass=best-effort, IOSchedulingPriority=7 would.
    let c = akv_sync::cli::service::COURTESY;
    let tasks: Vec<i32> = std::fs::read_dir(format!("/proc/{agent}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert!(tasks.len() > 1, "{tasks:?}");
    for tid in tasks {
        assert_eq!(
            priorities(tid),
            (c.nice, 2, i64::from(c.io_priority)),
            "thread {tid}: (nice, I/O class (2: best-effort), I/O level)"
        );
    }
    assert_eq!((c.nice, c.io_priority), (10, 7));
    // The supervisor itself keeps the handler's priorities.
    let supervisor: i32 = std::fs::read_to_string(ext.root.join("config/akv-sync.supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        priorities(supervisor).0,
        priorities(std::process::id() as i32).0
    );
    assert!(ext.handler(&env, "disable", None).status.success());
}

fn ec_spec_p12() -> CertSpec {
    CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 2,
        format: Format::Pkcs12,
        ..CertSpec::default()
    }
}

#[test]
fn a_new_sequence_with_invalid_settings_keeps_the_agent_on_the_last_good_one() {
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec_spec_p12())
        .unwrap();
    let ext = Extension::lay_out(&env);
    let _reaper = Reaper(ext.root.clone());
    ext.write_settings_polling(&env, 0, &["web"], "3600");
    assert!(ext.handler(&env, "enable", Some(0)).status.success());
    ext.wait_status(0, "success");
    let agent = ext.pid().unwrap();

    std::fs::write(ext.root.join("config/1.settings"), r#"{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"secretsManagementSettings":{"observedCertificates":"https://alpha.vault.azure.net/secrets/web"}}}}]}"#).unwrap();
    let out = ext.handler(&env, "enable", Some(1));
    assert!(!out.status.success());
    assert_eq!(ext.status(1).unwrap()["status"], "error");
    assert_eq!(ext.pid(), Some(agent), "the agent keeps running");
    assert!(alive(agent));
    assert_eq!(
        std::fs::read_link(ext.root.join("config/akv-sync.settings")).unwrap(),
        Path::new("0.settings"),
        "the agent stays on the last good settings"
    );
    assert_eq!(ext.status(0).unwrap()["status"], "success");
    assert!(ext.handler(&env, "disable", Some(1)).status.success());
    assert!(!alive(agent));
}

#[test]
fn a_store_the_sandbox_leaves_read_only_fails_naming_the_folder_and_the_fix() {
    // What ProtectSystem=strict does to a store folder missing from ReadWritePaths=: EROFS.
    let env = Env::start();
    env.emulator
        .control()
        .create_certificate("alpha", "web", ec_spec_p12())
        .unwrap();
    std::fs::create_dir_all(&env.store).unwrap();
    let mount = |opts: &str| {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&env.store)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    mount("size=1m,mode=0700");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .output();
        }
    }
    let _unmount = Unmount(env.store.clone());
    let out = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&env.store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let settings = env.write_settings(
        "s.json",
        &[("alpha", "web")],
        serde_json::json!({}),
        serde_json::json!({}),
    );
    let out = env
        .command(&[
            "once",
            "--settings",
            settings.to_str().unwrap(),
            "--attempts",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "{} is read-only for akv-sync",
            env.store.display()
        )),
        "{text}"
    );
    assert!(text.contains("ReadWritePaths="), "{text}");
    assert!(!text.contains("Read-only file system"), "{text}");
}
