//! A host that reaches Key Vault only through an HTTPS proxy: the agent tunnels to the vault
//! with CONNECT through a real squid (the Debian package, installed by `scripts/install-deps`),
//! TLS verifying the vault's name end to end, while the identity endpoint is reached directly
//! even though every proxy variable names squid.
//!
//! Squid resolves the vault's host name itself (its `hosts_file` maps it to a loopback address
//! of this test), so the emulator's Key Vault listens on that address's port 443, the port the
//! CONNECT names. The agent's own host mapping (`AKV_SYNC_CONNECT_TO`) sends vault hosts to a
//! closed port: a request that skipped the proxy fails, and nothing leaves the machine.

mod daemon_support;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use akv_sync_emulator::{CertSpec, Emulator, EmulatorOptions, Format, KeyKind, Server};
use daemon_support::{BIN, free_port, installed};

/// The two vaults of the tests (one certificate `c1` each).
const VAULTS: [&str; 2] = ["myvault", "other"];

fn squid_binary() -> PathBuf {
    ["/usr/sbin/squid", "/usr/bin/squid", "/usr/local/sbin/squid"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("squid is not installed: run scripts/install-deps (Debian package `squid`)")
}

/// squid in the foreground (`-N`), its configuration, logs and pid file in `dir`.
struct Squid {
    child: Child,
    port: u16,
    access_log: PathBuf,
}

impl Squid {
    /// Start squid on 127.0.0.1 and return once it accepts connections (its own log line on
    /// stderr says so).
    fn start(dir: &Path, vault_ip: Ipv4Addr) -> Squid {
        let port = free_port();
        let hosts = dir.join("hosts");
        let lines: String = VAULTS
            .iter()
            .map(|v| format!("{vault_ip} {v}.vault.azure.net\n"))
            .collect();
        std::fs::write(&hosts, lines).unwrap();
        let conf = dir.join("squid.conf");
        let access_log = dir.join("access.log");
        std::fs::write(
            &conf,
            format!(
                "http_port 127.0.0.1:{port}\n\
                 visible_hostname akv-sync-test-proxy\n\
                 pid_filename {dir}/squid.pid\n\
                 cache_log {dir}/cache.log\n\
                 access_log stdio:{access}\n\
                 coredump_dir {dir}\n\
                 netdb_filename none\n\
                 cache deny all\n\
                 cache_mem 8 MB\n\
                 hosts_file {hosts}\n\
                 shutdown_lifetime 0 seconds\n\
                 acl SSL_ports port 443\n\
                 acl CONNECT method CONNECT\n\
                 http_access deny CONNECT !SSL_ports\n\
                 http_access allow localhost\n\
                 http_access deny all\n",
                dir = dir.display(),
                access = access_log.display(),
                hosts = hosts.display(),
            ),
        )
        .unwrap();
        // squid drops to its own user: let it write its logs and pid file here.
        let proxy = nix::unistd::User::from_name("proxy")
            .unwrap()
            .expect("the squid package creates the `proxy` user");
        for path in [dir.to_path_buf(), conf.clone(), hosts] {
            nix::unistd::chown(&path, Some(proxy.uid), Some(proxy.gid)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new(squid_binary())
            .args(["-N", "-d", "1", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains("Accepting HTTP Socket connections") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("squid did not start listening:\n{}", seen.join("\n")),
            }
        }
        Squid {
            child,
            port,
            access_log,
        }
    }

    /// Stop squid and wait for it to exit (its access log is complete then); the log's lines.
    fn stop(mut self) -> Vec<String> {
        self.terminate();
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The emulator on a loopback address of its own, Key Vault on port 443 there (squid
/// connects to the port the CONNECT names).
async fn emulator_on_port_443(dir: &Path) -> (Emulator, Ipv4Addr) {
    let mut last = None;
    for _ in 0..20 {
        let ip = Ipv4Addr::new(
            127,
            77,
            rand::random_range(1..=254),
            rand::random_range(1..=254),
        );
        match akv_sync_emulator::start(EmulatorOptions {
            listen: IpAddr::V4(ip),
            vault_port: 443,
            state_dir: dir.join("emulator"),
            arc_token_dir: dir.join("arc"),
            ..EmulatorOptions::default()
        })
        .await
        {
            Ok(emu) => return (emu, ip),
            Err(e) => last = Some(e),
        }
    }
    panic!("no loopback address with a free port 443: {last:?}");
}

/// The emulator with one certificate on port 443 of its own address, squid in front of it,
/// and settings observing that certificate.
struct World {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    emu: Emulator,
    squid: Squid,
    versions: Vec<String>,
    settings: PathBuf,
    store: PathBuf,
}

impl World {
    fn start() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (emu, vault_ip) = rt.block_on(emulator_on_port_443(dir.path()));
        let versions = VAULTS
            .iter()
            .map(|vault| {
                emu.control()
                    .create_certificate(
                        vault,
                        "c1",
                        CertSpec {
                            key: KeyKind::EcP256,
                            chain_len: 2,
                            format: Format::Pem,
                            ..CertSpec::default()
                        },
                    )
                    .unwrap()
            })
            .collect();
        let squid_dir = dir.path().join("squid");
        std::fs::create_dir(&squid_dir).unwrap();
        let squid = Squid::start(&squid_dir, vault_ip);
        let store = dir.path().join("store");
        let settings = dir.path().join("settings.json");
        std::fs::write(
            &settings,
            serde_json::json!({
                "secretsManagementSettings": {
                    "pollingIntervalInS": "3600",
                    "observedCertificates": VAULTS.iter().map(|v| serde_json::json!({
                        "url": format!("https://{v}.vault.azure.net/secrets/c1"),
                        "certificateStoreLocation": store.display().to_string(),
                    })).collect::<Vec<_>>(),
                }
            })
            .to_string(),
        )
        .unwrap();
        World {
            rt,
            dir,
            emu,
            squid,
            versions,
            settings,
            store,
        }
    }

    /// `akv-sync once` with `AKV_SYNC_CONNECT_TO=connect_to` and `env` set (every proxy
    /// variable not in `env` removed); checks both certificates were installed and returns
    /// squid's access log (squid stopped) and the agent's output.
    fn once(self, connect_to: &str, env: &[(&str, String)]) -> (Vec<String>, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(["once", "--settings"])
            .arg(&self.settings)
            .args(["--attempts", "1"])
            .env(akv_sync::azure::net::ENV_CA_FILE, &self.emu.ca_file)
            .env(
                akv_sync::azure::identity::ENV_IMDS_ENDPOINT,
                &self.emu.imds_endpoint,
            )
            .env(akv_sync::azure::net::ENV_CONNECT_TO, connect_to)
            .env_remove("AKV_SYNC_LOG")
            .env_remove("NOTIFY_SOCKET");
        for var in [
            "NO_PROXY",
            "no_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        for (var, value) in env {
            cmd.env(var, value);
        }
        let out = cmd.output().unwrap();
        let World {
            rt,
            dir: _dir,
            emu,
            squid,
            versions,
            store,
            ..
        } = self;
        let log = squid.stop();
        let output = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "once failed:\n{output}\nproxy log:\n{}",
            log.join("\n")
        );
        // The identity endpoint was reached (directly: see the proxy's log).
        let counters = emu.control().counters();
        assert!(counters.server_requests(Server::Imds, Some(200)) >= 1);
        for (vault, version) in VAULTS.iter().zip(versions) {
            assert_eq!(installed(&store, vault, "c1"), Some(version), "{vault}");
            assert!(counters.vault_requests(vault, Some(200)) >= 1, "{vault}");
        }
        rt.block_on(emu.shutdown());
        (log, output)
    }
}

#[test]
fn agent_installs_through_an_https_proxy_and_reaches_the_identity_endpoint_directly() {
    let world = World::start();
    // With credentials (squid asks for none and ignores them): used, never shown.
    let proxy_url = format!("http://akv:pr0xy-s3cret@127.0.0.1:{}", world.squid.port);
    // Every variable names squid, as a systemd DefaultEnvironment= line would: the identity
    // endpoint (plain http on loopback) must still be reached directly. A vault request that
    // skipped the proxy would meet a closed port.
    let env: Vec<(&str, String)> = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]
        .into_iter()
        .map(|var| (var, proxy_url.clone()))
        .collect();
    let port = world.squid.port;
    let (log, output) = world.once("*.vault.azure.net=127.0.0.1:1", &env);
    assert!(
        output.contains("Key Vault requests go through an HTTPS proxy")
            && output.contains(&format!("http://127.0.0.1:{port}/")),
        "{output}"
    );
    assert!(!output.contains("pr0xy-s3cret"), "{output}");

    // The proxy carried each vault's traffic as a CONNECT tunnel, and nothing else.
    let tunnels: Vec<String> = VAULTS
        .iter()
        .map(|v| format!(" CONNECT {v}.vault.azure.net:443 "))
        .collect();
    for tunnel in &tunnels {
        assert!(
            log.iter().any(|l| l.contains(tunnel) && l.contains("/200")),
            "no{tunnel}in the proxy's log:\n{}",
            log.join("\n")
        );
    }
    assert!(
        log.iter().all(|l| tunnels.iter().any(|t| l.contains(t))),
        "the proxy saw more than the vault tunnels:\n{}",
        log.join("\n")
    );
}

#[test]
fn only_the_vault_hosts_outside_no_proxy_go_through_the_proxy() {
    let world = World::start();
    let proxy_url = format!("http://127.0.0.1:{}", world.squid.port);
    // `myvault` is excepted and reached directly at the emulator; `other` must take the proxy
    // (directly it would meet a closed port).
    let connect_to = format!(
        "myvault.vault.azure.net={},*.vault.azure.net=127.0.0.1:1",
        world.emu.vault_addr
    );
    let env = vec![
        ("https_proxy", proxy_url),
        ("no_proxy", "localhost,myvault.vault.azure.net".to_owned()),
    ];
    let (log, _) = world.once(&connect_to, &env);
    assert!(
        log.iter()
            .any(|l| l.contains(" CONNECT other.vault.azure.net:443 ")),
        "{}",
        log.join("\n")
    );
    assert!(
        !log.iter().any(|l| l.contains("myvault")),
        "the excepted vault went through the proxy:\n{}",
        log.join("\n")
    );
}
