//! A real nginx serves HTTPS from the agent's link; a rotation in the emulator reaches it
//! through the agent's reload hook while a client keeps connecting, without one failed
//! handshake.
//!
//! nginx is the Debian package (installed by `scripts/install-deps`), run as a daemon with its
//! own configuration, pid file and error log in a temporary folder. Its `ssl_certificate` and
//! `ssl_certificate_key` both name the agent's link `<store>/<vault>.<name>`: the combined
//! file holds the chain and the key.

mod daemon_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;

use akv_sync_emulator::generator::{CertSpec, Format, Generated, KeyKind, generate, to_pem};
use daemon_support::*;
use serde_json::json;

const SERVER_NAME: &str = "web.test";

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: run scripts/install-deps (Debian package `nginx`)")
}

/// nginx started as a daemon: `nginx -c CONF` returns once its listening socket is bound, so
/// connections made afterwards wait in the backlog until a worker accepts them.
struct Nginx {
    bin: PathBuf,
    conf: PathBuf,
    pid_file: PathBuf,
    error_log: PathBuf,
}

impl Nginx {
    /// nginx's files in `dir`; nothing runs yet.
    fn new(dir: &Path) -> Nginx {
        Nginx {
            bin: nginx_binary(),
            conf: dir.join("nginx.conf"),
            pid_file: dir.join("nginx.pid"),
            error_log: dir.join("error.log"),
        }
    }

    fn start(&self, dir: &Path, port: u16, link: &Path) {
        let (bin, conf, pid_file, error_log) =
            (&self.bin, &self.conf, &self.pid_file, &self.error_log);
        std::fs::write(
            conf,
            format!(
                "worker_processes 1;\n\
                 pid {pid};\n\
                 error_log {err} info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                   access_log off;\n\
                   server {{\n\
                     listen 127.0.0.1:{port} ssl;\n\
                     server_name {SERVER_NAME};\n\
                     ssl_certificate {link};\n\
                     ssl_certificate_key {link};\n\
                     location / {{ return 200 \"ok\\n\"; }}\n\
                   }}\n\
                 }}\n",
                pid = pid_file.display(),
                err = error_log.display(),
                link = link.display(),
            ),
        )
        .unwrap();
        let out = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(error_log)
            .arg("-c")
            .arg(conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The worker processes of the running master (children of the pid in the pid file).
    fn workers(&self) -> Vec<i32> {
        let master = std::fs::read_to_string(&self.pid_file).unwrap();
        let master: i32 = master.trim().parse().unwrap();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let rest = stat.rsplit_once(')')?.1.to_owned();
                        rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                    })
                    == Some(master)
            })
            .collect()
    }

    /// The argv of the agent's reload hook.
    fn reload_command(&self) -> Vec<String> {
        vec![
            self.bin.display().to_string(),
            "-e".into(),
            self.error_log.display().to_string(),
            "-c".into(),
            self.conf.display().to_string(),
            "-s".into(),
            "reload".into(),
        ]
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master process we started, by the id it wrote.
        if let Some(pid) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn leaf(cn: &str) -> Generated {
    generate(&CertSpec {
        key: KeyKind::EcP256,
        issuer_key: KeyKind::EcP256,
        chain_len: 3,
        format: Format::Pem,
        subject_cn: cn.to_owned(),
        ..CertSpec::default()
    })
    .unwrap()
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string().replace(':', "").to_uppercase()
}

/// A client trusting only the given roots.
fn client_config(roots: &[&Generated]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for g in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(
                g.certs_der.last().unwrap().clone(),
            ))
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// One full handshake plus a request; the leaf's serial, or why it failed.
fn handshake(config: &Arc<rustls::ClientConfig>, port: u16) -> Result<String, String> {
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET / HTTP/1.0\r\nHost: web.test\r\n\r\n")
        .map_err(|e| format!("handshake: {e}"))?;
    let mut body = Vec::new();
    // nginx closes without close_notify on HTTP/1.0 at times: a clean EOF after the body is fine.
    match tls.read_to_end(&mut body) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !body.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    if !body.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let certs = conn.peer_certificates().ok_or("no peer certificate")?;
    Ok(serial_of(&certs[0]))
}

#[test]
fn nginx_keeps_serving_through_a_rotation_and_then_serves_the_new_serial() {
    let env = Env::start();
    let control = env.emulator.control();
    let v1 = leaf(SERVER_NAME);
    let v2 = leaf(SERVER_NAME);
    let (serial1, serial2) = (serial_of(&v1.certs_der[0]), serial_of(&v2.certs_der[0]));
    control
        .set_raw_secret("alpha", "web", &to_pem(&v1), "application/x-pem-file")
        .unwrap();

    let nginx_dir = env.path("nginx");
    std::fs::create_dir(&nginx_dir).unwrap();
    let port = free_port();
    let link = env.store.join("alpha.web");
    // The hook needs nginx's argv before nginx starts (it starts once the link exists).
    let nginx = Nginx::new(&nginx_dir);
    let reload = nginx.reload_command();
    let settings_path = env.path("s.json");
    let settings = json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "1",
            "requireInitialSync": true,
            "observedCertificates": [
                { "url": "https://alpha.vault.azure.net/secrets/web",
                  "certificateStoreLocation": env.store.display().to_string(),
                  "akvSync": { "onChange": { "command": reload, "timeoutInS": 30 } } }
            ]
        }
    });
    std::fs::write(&settings_path, settings.to_string()).unwrap();
    let mut d = env.run(&settings_path, &["--log", "debug"]);
    d.wait_status("success");
    // The first install's hook finds no nginx yet (no pid file) and fails: harmless.
    d.wait_line("the first hook", |v| {
        v["hook"] == "certificate" && v["message"].as_str().is_some_and(|m| m.contains("hook"))
    });
    nginx.start(&nginx_dir, port, &link);

    // Trust both versions' roots: every handshake must verify, before and after the reload.
    let config = client_config(&[&v1, &v2]);
    assert_eq!(handshake(&config, port), Ok(serial1.clone()));

    // After a reload nginx's old worker still accepts for a moment (the master tells it to
    // quit about 100 ms after starting the new one), so old and new serials interleave
    // briefly. The loop ends once the new serial came back N times and the old worker is gone.
    let old_workers = nginx.workers();
    assert!(!old_workers.is_empty());
    const NEW_SEEN_TARGET: usize = 20;
    let (seen_tx, seen_rx) = mpsc::channel::<Result<String, String>>();
    let client = {
        let config = config.clone();
        let serial2 = serial2.clone();
        std::thread::spawn(move || {
            let mut new_seen = 0;
            // Bounded by what it sees: it stops once the new serial came back N times.
            let old_alive = || {
                old_workers
                    .iter()
                    .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
            };
            while new_seen < NEW_SEEN_TARGET || old_alive() {
                let r = handshake(&config, port);
                if r.as_deref() == Ok(serial2.as_str()) {
                    new_seen += 1;
                }
                if seen_tx.send(r).is_err() {
                    break;
                }
            }
        })
    };
    // Rotate only once the loop is connecting.
    assert!(seen_rx.recv().unwrap().is_ok());
    let version2 = control
        .set_raw_secret("alpha", "web", &to_pem(&v2), "application/x-pem-file")
        .unwrap();
    d.wait_line("the rotation installed", |v| {
        v["message"] == "installed new version" && v["version"] == version2
    });
    d.wait_line("nginx reloaded by the hook", |v| {
        v["message"] == "hook ran" && v["hook"] == "certificate"
    });
    let mut results = Vec::new();
    // The client thread ends after NEW_SEEN_TARGET handshakes with the new serial; the agent
    // holding the process is bounded by wait_line above, nginx by the backlog.
    for r in seen_rx.iter() {
        results.push(r);
    }
    client.join().unwrap();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} handshakes failed: {:?}",
        failures.len(),
        results.len(),
        &failures[..failures.len().min(5)]
    );
    let serials: Vec<&str> = results.iter().map(|r| r.as_deref().unwrap()).collect();
    assert!(serials.iter().all(|s| *s == serial1 || *s == serial2));
    assert_eq!(serials[0], serial1, "the loop started before the rotation");
    // (Right after a reload an old worker may still accept a connection or two, until it
    // gets the master's graceful shutdown: old and new serials may interleave briefly.)
    assert_eq!(*serials.last().unwrap(), serial2);

    // The operator's view: openssl s_client, verifying against the new root only.
    let root2 = env.path("root2.pem");
    std::fs::write(
        &root2,
        pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            v2.certs_der.last().unwrap().clone(),
        )),
    )
    .unwrap();
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            SERVER_NAME,
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&root2)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        s_client.status.success(),
        "{}",
        String::from_utf8_lossy(&s_client.stderr)
    );
    let x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&s_client.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&x509.stdout).trim(),
        format!("serial={serial2}")
    );
    let (code, _) = d.stop();
    assert_eq!(code, Some(0));
    drop(nginx);
}
