//! Scale benchmark: the agent against N observed certificates spread over 3 vaults, side by
//! side with a raw-fetch baseline (the same GETs, no conversion, no writing).
//!
//! `cargo bench --bench scale` (N = 1,000, 10,000 and 100,000), or for a quick run
//! `AKV_SCALE_N=1000,10000 cargo bench --bench scale`.
//!
//! Three kinds of process, all this same binary (chosen by `AKV_SCALE_ROLE`), so that each
//! measurement is of one process only:
//! - the **emulator** (child): serves N secrets; its CPU and memory are not the agent's;
//! - the **raw-fetch baseline** (child): one token, then the N GETs through a reqwest client
//!   built like the agent's (same TLS, same pooling), 16 at a time per vault;
//! - the **agent** (child): the real reconciler (`Agent::start` with the real ports: identity,
//!   Key Vault client, material conversion, store) with `requireInitialSync`; it measures
//!   itself with `getrusage` (CPU, peak RSS) and `/proc/self/io` (bytes written), then waits
//!   for one polling cycle in which nothing changed.
//!
//! The orchestrator (no role) starts them in turn for each N and prints a table.
//!
//! Generating 100,000 RSA-2048 keys would take hours, so a handful of distinct 2-certificate
//! RSA-2048 PFX values is generated once and served under many names. The agent cannot tell:
//! it converts and writes every one as its own certificate.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use akv_sync_actors::{Agent, CheckOutcome, NewVersion, Observer, State, Status, StatusSink};
use akv_sync_config::ObservedCertificate;
use akv_sync_emulator::generator::{self, CertSpec, Format, KeyKind};
use akv_sync_emulator::{Counters, EmulatorOptions, Fault, FaultAction, FaultTarget, Server};
use serde_json::{Value, json};

const ROLE: &str = "AKV_SCALE_ROLE";
/// Distinct PFX values generated (each served under N / DISTINCT names).
const DISTINCT: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn vaults() -> usize {
    env_usize("AKV_SCALE_VAULTS", 3)
}

fn vault_name(v: usize) -> String {
    format!("scale{v}")
}

/// Certificate `i` lives in vault `i % vaults` under this name.
fn cert_name(i: usize) -> String {
    format!("cert-{i:06}")
}

fn main() {
    // For the plain-HTTP admin client (the agent's own client brings its provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match std::env::var(ROLE).as_deref() {
        Ok("emulator") => role_emulator(),
        Ok("agent") => role_agent(),
        Ok("raw") => role_raw(),
        _ => orchestrate(),
    }
}

// ----- measuring this process -----

struct Usage {
    cpu_s: f64,
    user_s: f64,
    sys_s: f64,
    max_rss_mib: f64,
}

fn usage() -> Usage {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let (user_s, sys_s) = (secs(u.user_time()), secs(u.system_time()));
    Usage {
        cpu_s: user_s + sys_s,
        user_s,
        sys_s,
        // Linux reports ru_maxrss in KiB.
        max_rss_mib: u.max_rss() as f64 / 1024.0,
    }
}

/// `write_bytes` of /proc/self/io: bytes this process caused to be written to storage.
fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

/// (inode, mtime ns, size) of every entry of the store folders, by path.
fn snapshot(dirs: &[PathBuf]) -> HashMap<PathBuf, (u64, i128, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashMap::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let m = std::fs::symlink_metadata(e.path()).expect("stat");
            let mtime = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            out.insert(e.path(), (m.ino(), mtime, m.size()));
        }
    }
    out
}

/// The emulator's request counters, through its admin API (on a throwaway runtime, so that
/// it can be called from anywhere).
fn counters(admin_url: &str) -> Counters {
    let url = format!("{admin_url}/admin/counters");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .send()
                .await
                .expect("emulator admin API")
                .json()
                .await
                .expect("counters JSON")
        })
    })
    .join()
    .expect("counters thread")
}

struct Requests {
    vault: u64,
    imds: u64,
    tokens: u64,
    throttled: u64,
}

fn requests(before: &Counters, after: &Counters) -> Requests {
    let tokens = |c: &Counters| c.tokens_issued.iter().map(|t| t.count).sum::<u64>();
    Requests {
        vault: after.server_requests(Server::Vault, None)
            - before.server_requests(Server::Vault, None),
        imds: after.server_requests(Server::Imds, None)
            - before.server_requests(Server::Imds, None),
        tokens: tokens(after) - tokens(before),
        throttled: after.server_requests(Server::Vault, Some(429))
            - before.server_requests(Server::Vault, Some(429)),
    }
}

fn emulator_info() -> Value {
    serde_json::from_str(&std::env::var("AKV_SCALE_EMULATOR").expect("AKV_SCALE_EMULATOR"))
        .expect("emulator info JSON")
}

fn runtime() -> tokio::runtime::Runtime {
    // The one `akv-sync run` builds (with its malloc arena limit).
    akv_sync::cli::ports::runtime().expect("runtime")
}

// ----- the emulator child -----

fn role_emulator() {
    let n = env_usize("AKV_SCALE_N_ONE", 1000);
    let dir = PathBuf::from(std::env::var("AKV_SCALE_DIR").expect("AKV_SCALE_DIR"));
    let values: Vec<String> = (0..DISTINCT)
        .map(|i| {
            let spec = CertSpec {
                key: KeyKind::Rsa2048,
                issuer_key: KeyKind::Rsa2048,
                chain_len: 2,
                format: Format::Pkcs12,
                subject_cn: format!("scale-{i}"),
                ..CertSpec::default()
            };
            let g = generator::generate(&spec).expect("generate");
            generator::secret_value(&g, Format::Pkcs12)
                .expect("pkcs12")
                .to_string()
        })
        .collect();
    let rt = runtime();
    rt.block_on(async {
        let emulator = akv_sync_emulator::start(EmulatorOptions {
            state_dir: dir.join("emulator"),
            arc_token_dir: dir.join("arc"),
            ..EmulatorOptions::default()
        })
        .await
        .expect("emulator");
        let control = emulator.control();
        // A vault that is not on this host: every secret GET answers after this delay
        // (network round trip plus service time), for the baseline and the agent alike.
        let latency = env_usize("AKV_SCALE_LATENCY_MS", 0) as u64;
        if latency > 0 {
            control.inject_fault(Fault::new(
                FaultTarget::Vault,
                "/secrets/*",
                FaultAction::Delay { millis: latency },
            ));
        }
        for i in 0..n {
            control
                .set_raw_secret(
                    &vault_name(i % vaults()),
                    &cert_name(i),
                    &values[i % DISTINCT],
                    Format::Pkcs12.content_type(),
                )
                .expect("secret");
        }
        let mut info = emulator.startup_info();
        info["ca_pem"] = json!(emulator.ca_pem);
        println!("{info}");
        std::io::stdout().flush().unwrap();
        // Serve until the orchestrator closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        emulator.shutdown().await;
    });
}

// ----- the raw-fetch baseline child -----

fn role_raw() {
    let n = env_usize("AKV_SCALE_N_ONE", 1000);
    let concurrency = env_usize("AKV_SCALE_CONCURRENCY", 16);
    let info = emulator_info();
    let admin = info["admin_url"].as_str().unwrap().to_owned();
    let before = counters(&admin);
    let start = Instant::now();
    let bytes = AtomicU64::new(0);
    let rt = runtime();
    rt.block_on(async {
        let net = akv_sync::azure::net::net_for_emulator(
            info["vault_addr"].as_str().unwrap().parse().unwrap(),
            info["ca_pem"].as_str().unwrap(),
        );
        let client = net.client().expect("client");
        let token: Value = client
            .get(format!(
                "{}/oauth2/token",
                info["imds_endpoint"].as_str().unwrap()
            ))
            .query(&[
                ("api-version", "2018-02-01"),
                ("resource", "https://vault.azure.net"),
            ])
            .header("Metadata", "true")
            .send()
            .await
            .expect("IMDS")
            .json()
            .await
            .expect("token JSON");
        let token = Arc::new(token["access_token"].as_str().unwrap().to_owned());
        let mut tasks = tokio::task::JoinSet::new();
        for v in 0..vaults() {
            let names: Arc<Vec<usize>> = Arc::new((v..n).step_by(vaults()).collect());
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency {
                let (client, token, names, next) =
                    (client.clone(), token.clone(), names.clone(), next.clone());
                tasks.spawn(async move {
                    let mut got = 0u64;
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = names.get(k) else { break };
                        let resp = client
                            .get(format!(
                                "https://{}.vault.azure.net/secrets/{}",
                                vault_name(v),
                                cert_name(i)
                            ))
                            .query(&[("api-version", akv_sync::azure::vault::API_VERSION)])
                            .bearer_auth(token.as_str())
                            .send()
                            .await
                            .expect("GET");
                        assert!(resp.status().is_success(), "raw GET: {}", resp.status());
                        got += resp.bytes().await.expect("body").len() as u64;
                    }
                    got
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            bytes.fetch_add(r.unwrap(), Ordering::Relaxed);
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let u = usage();
    let r = requests(&before, &counters(&admin));
    println!(
        "{}",
        json!({
            "wall_s": wall, "cpu_s": u.cpu_s, "user_s": u.user_s, "sys_s": u.sys_s,
            "max_rss_mib": u.max_rss_mib, "vault_requests": r.vault, "imds_requests": r.imds,
            "tokens": r.tokens, "throttled": r.throttled, "body_bytes": bytes.load(Ordering::Relaxed),
        })
    );
}

// ----- the agent child -----

struct NoStatus;
impl StatusSink for NoStatus {
    fn report(&self, _: &Status) {}
}

/// Counts checks (and how many found the version current) and new installs.
#[derive(Default)]
struct Count {
    checks: AtomicUsize,
    current: AtomicUsize,
    failed: AtomicUsize,
    installed: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl Observer for Count {
    fn checked(&self, _: &ObservedCertificate, outcome: &CheckOutcome) {
        match outcome {
            CheckOutcome::Current { .. } => {
                self.current.fetch_add(1, Ordering::Relaxed);
            }
            CheckOutcome::Failed { .. } => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_one();
    }
    fn installed_batch(&self, batch: &[NewVersion]) {
        self.installed.fetch_add(batch.len(), Ordering::Relaxed);
    }
}

fn role_agent() {
    let n = env_usize("AKV_SCALE_N_ONE", 1000);
    let interval = env_usize("AKV_SCALE_INTERVAL", 60);
    let info = emulator_info();
    let admin = info["admin_url"].as_str().unwrap().to_owned();
    let dir = PathBuf::from(std::env::var("AKV_SCALE_DIR").expect("AKV_SCALE_DIR"));
    let stores: Vec<PathBuf> = (0..vaults())
        .map(|v| dir.join("store").join(vault_name(v)))
        .collect();
    let before = counters(&admin);
    let writes_before = write_bytes();

    let start = Instant::now();
    // The settings a user with N certificates would write: one folder per vault, checks every
    // `interval` s, no jitter (so the one measured cycle is one check of each certificate).
    let certs: Vec<Value> = (0..n)
        .map(|i| {
            let v = i % vaults();
            json!({
                "url": format!("https://{}.vault.azure.net/secrets/{}", vault_name(v), cert_name(i)),
                "certificateStoreLocation": stores[v].display().to_string(),
            })
        })
        .collect();
    let text = serde_json::to_string(&json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": interval.to_string(),
            "requireInitialSync": true,
            "observedCertificates": certs,
        },
        "akvSyncSettings": { "pollingJitter": 0.0 },
    }))
    .unwrap();
    drop(certs);
    let settings = akv_sync_config::parse(&text)
        .unwrap_or_else(|e| panic!("settings: {e:?}"))
        .settings;
    drop(text);

    // Peak so far: the settings of N certificates, parsed (the agent does the same at start).
    let settings_max_rss_mib = usage().max_rss_mib;
    let count = Arc::new(Count::default());
    let rt = runtime();
    let report = rt.block_on(async {
        let net = akv_sync::azure::net::net_for_emulator(
            info["vault_addr"].as_str().unwrap().parse().unwrap(),
            info["ca_pem"].as_str().unwrap(),
        );
        let ports = akv_sync::cli::ports::ports_with(
            &settings,
            &net,
            Some(info["imds_endpoint"].as_str().unwrap().to_owned()),
            Arc::new(NoStatus),
            count.clone(),
        )
        .expect("ports");
        let agent = Agent::start(&settings, ports);
        drop(settings);
        let mut gate = agent.gate().subscribe();
        let status = gate
            .wait_for(|v| v.status.state != State::Transitioning)
            .await
            .expect("gate")
            .status
            .clone();
        let sync_wall = start.elapsed().as_secs_f64();
        let sync_usage = usage();
        let sync_writes = write_bytes() - writes_before;
        let sync_checks = count.checks.load(Ordering::Relaxed);
        let sync_installed = count.installed.load(Ordering::Relaxed);
        let mid = counters(&admin);
        let files = snapshot(&stores);
        let writes_mid = write_bytes();
        let current_mid = count.current.load(Ordering::Relaxed);

        // One polling cycle with nothing changed: wait for N more checks.
        while count.checks.load(Ordering::Relaxed) < 2 * n {
            count.notify.notified().await;
        }
        let cycle_usage = usage();
        let cycle_writes = write_bytes() - writes_mid;
        let after_files = snapshot(&stores);
        let changed = after_files
            .iter()
            .filter(|(p, m)| files.get(*p) != Some(m))
            .count()
            + files.len().saturating_sub(after_files.len());
        let after = counters(&admin);
        let cycle_current = count.current.load(Ordering::Relaxed) - current_mid;

        // A second unchanged cycle (AKV_SCALE_CYCLES=1 skips it): the first one's reads of
        // the links just created update their access time once (relatime), which the kernel
        // may count as this process's writes; from then on nothing is written at all.
        let (mut cycle2_cpu, mut cycle2_writes) = (None, None);
        if env_usize("AKV_SCALE_CYCLES", 2) >= 2 {
            let writes = write_bytes();
            while count.checks.load(Ordering::Relaxed) < 3 * n {
                count.notify.notified().await;
            }
            cycle2_cpu = Some(usage().cpu_s - cycle_usage.cpu_s);
            cycle2_writes = Some(write_bytes() - writes);
        }
        agent.shutdown().await;
        let sync = requests(&before, &mid);
        let cycle = requests(&mid, &after);
        json!({
            "state": format!("{:?}", status.state),
            "sync_wall_s": sync_wall,
            "sync_cpu_s": sync_usage.cpu_s, "sync_user_s": sync_usage.user_s, "sync_sys_s": sync_usage.sys_s,
            "sync_max_rss_mib": sync_usage.max_rss_mib,
            "settings_max_rss_mib": settings_max_rss_mib,
            "sync_write_bytes": sync_writes,
            "sync_checks": sync_checks, "sync_installed": sync_installed,
            "sync_vault_requests": sync.vault, "sync_imds_requests": sync.imds, "sync_tokens": sync.tokens,
            "sync_throttled": sync.throttled,
            "polls_before_ready": sync_checks.saturating_sub(n),
            "files": files.len(),
            "cycle_cpu_s": cycle_usage.cpu_s - sync_usage.cpu_s,
            "cycle_write_bytes": cycle_writes,
            "cycle_files_changed": changed,
            "cycle_current": cycle_current,
            "cycle_failed": count.failed.load(Ordering::Relaxed),
            "cycle_vault_requests": cycle.vault, "cycle_imds_requests": cycle.imds, "cycle_tokens": cycle.tokens,
            "cycle2_cpu_s": cycle2_cpu, "cycle2_write_bytes": cycle2_writes,
            "max_rss_mib": usage().max_rss_mib,
        })
    });
    println!("{report}");
}

// ----- the orchestrator -----

/// A child of this binary in `role`. `AKV_SCALE_WRAP_AGENT` (e.g. `strace -f -c -w -o
/// /tmp/agent.strace`, or `valgrind --tool=callgrind`) runs the agent child under a profiler.
fn child(role: &str, n: usize, dir: &Path, extra: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let wrap = std::env::var("AKV_SCALE_WRAP_AGENT").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut cmd = match wrap.next() {
        Some(prog) if role == "agent" => {
            let mut c = Command::new(prog);
            c.args(wrap).arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    cmd.env(ROLE, role)
        .env("AKV_SCALE_N_ONE", n.to_string())
        .env("AKV_SCALE_DIR", dir)
        .stdout(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn run_json(mut cmd: Command) -> Value {
    let out = cmd.stderr(Stdio::inherit()).output().expect("spawn child");
    assert!(out.status.success(), "child failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("child's JSON report")
}

fn orchestrate() {
    let ns: Vec<usize> = std::env::var("AKV_SCALE_N")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();
    let base = std::env::var_os("AKV_SCALE_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let mut rows = Vec::new();
    for &n in &ns {
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        eprintln!("scale: N = {n}: starting the emulator");
        let t = Instant::now();
        let mut emu = child("emulator", n, dir.path(), &[])
            .stdin(Stdio::piped())
            .spawn()
            .expect("emulator child");
        let mut line = String::new();
        BufReader::new(emu.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("emulator info");
        let info = line.trim().to_owned();
        eprintln!(
            "scale: N = {n}: emulator ready in {:.1} s; raw-fetch baseline",
            t.elapsed().as_secs_f64()
        );
        let raw = run_json(child(
            "raw",
            n,
            dir.path(),
            &[("AKV_SCALE_EMULATOR", info.clone())],
        ));
        eprintln!("scale: N = {n}: raw {raw}");
        // The cycle starts one interval after each certificate's first download: leave room
        // for the whole initial sync (about 2.5 ms per certificate on the reference machine)
        // before any poll begins; `polls_before_ready` in the report says if it was not.
        let interval = std::env::var("AKV_SCALE_INTERVAL").unwrap_or_else(|_| {
            let raw_s = raw["wall_s"].as_f64().unwrap();
            ((raw_s * 3.0).ceil() as usize + 10 + n / 300).to_string()
        });
        eprintln!("scale: N = {n}: agent (polling interval {interval} s)");
        let agent = run_json(child(
            "agent",
            n,
            dir.path(),
            &[
                ("AKV_SCALE_EMULATOR", info.clone()),
                ("AKV_SCALE_INTERVAL", interval),
            ],
        ));
        eprintln!("scale: N = {n}: agent {agent}");
        drop(emu.stdin.take());
        let _ = emu.wait();
        rows.push((n, raw, agent));
    }
    print_table(&rows);
}

fn print_table(rows: &[(usize, Value, Value)]) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!();
    println!(
        "| N | raw wall s | agent sync wall s | wall ratio | raw CPU s | agent sync CPU s | agent peak RSS MiB | raw peak RSS MiB | vault GETs (sync) | token requests | unchanged cycle: CPU s | cycle/raw CPU | cycle bytes written | cycle files changed | cycle GETs | 2nd cycle CPU s | 2nd cycle bytes written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, raw, agent) in rows {
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {:.2} | {} |",
            f(raw, "wall_s"),
            f(agent, "sync_wall_s"),
            f(agent, "sync_wall_s") / f(raw, "wall_s"),
            f(raw, "cpu_s"),
            f(agent, "sync_cpu_s"),
            f(agent, "max_rss_mib"),
            f(raw, "max_rss_mib"),
            agent["sync_vault_requests"],
            agent["sync_tokens"],
            f(agent, "cycle_cpu_s"),
            f(agent, "cycle_cpu_s") / f(raw, "cpu_s"),
            agent["cycle_write_bytes"],
            agent["cycle_files_changed"],
            agent["cycle_vault_requests"],
            f(agent, "cycle2_cpu_s"),
            agent["cycle2_write_bytes"],
        );
    }
}
