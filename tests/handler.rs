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
        let root = env.path("Microsoft.Azure.KeyVault.KeyVaultForLinux-3.0.0");
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
        let observed: Vec<_> = certs
            .iter()
            .map(|n| json!({ "url": format!("https://alpha.vault.azure.net/secrets/{n}"), "certificateStoreLocation": env.store }))
            .collect();
        let file = json!({ "runtimeSettings": [ { "handlerSettings": { "publicSettings": {
            "secretsManagementSettings": { "pollingIntervalInS": "1", "requireInitialSync": true, "observedCertificates": observed }
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

/// Stops a detached agent left behind by a failing test.
struct Reaper(PathBuf);
impl Drop for Reaper {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.0.join("config/akv-sync.pid"))
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
    ext.wait_status(1, "success");
    assert!(installed_file(&env.store, "api"));
    let second = ext.pid().unwrap();
    assert_ne!(
        first, second,
        "the agent was restarted for the new sequence"
    );
    assert!(!alive(first), "the old agent stopped");

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
