//! Busy-VM benchmark (issue 17 point 3, "courteous on busy VMs"): a service that keeps every
//! core busy, side by side with an initial sync of N PFX certificates by `akv-sync once`.
//!
//! `cargo bench --bench busy` (N = 3,000). One run, phases in turn against one emulator:
//!
//! 1. **sync alone**: `akv-sync once` on an otherwise idle machine (its CPU per certificate);
//! 2. **service alone**: the service's p50/p99 latency and throughput for a window;
//! 3. **beside an unconstrained sync**: the service measured while `akv-sync once` runs at
//!    nice 0 with the default cgroup weight (100) — what an agent without priorities does;
//! 4. **beside the courteous sync**: the same, with the unit's priorities
//!    (`akv_sync::cli::service::COURTESY`: `Nice=`, `CPUWeight=`, best-effort I/O priority),
//!    applied the way systemd applies them: the agent in a cgroup of its own with the unit's
//!    weight, the service in a sibling at the default weight.
//!
//! The **service** (a child process) has one worker thread per core; each answers a request
//! (one byte over loopback TCP) after burning `AKV_BUSY_REQUEST_MS` (2) ms of its own CPU
//! time. A closed-loop client with one connection per worker (in the same process) sends the
//! next request as soon as the answer arrives, so alone the service uses every core. The
//! client records each request's latency; the orchestrator opens and closes the measured
//! window over the child's stdin.
//!
//! The **emulator** (a child process) serves N secrets: 8 distinct 2-certificate RSA-2048
//! PFX values in Key Vault's form (absent password, 3DES, 2,000 iterations), each under many
//! names, as in `benches/scale.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akv_sync::cli::service::{COURTESY, Courtesy};
use akv_sync_emulator::EmulatorOptions;
use akv_sync_emulator::generator::{self, CertSpec, Format, KeyKind};
use serde_json::{Value, json};

const ROLE: &str = "AKV_BUSY_ROLE";
/// Distinct PFX values generated (each served under N / DISTINCT names).
const DISTINCT: usize = 8;
const VAULT: &str = "busy";
/// The release binary cargo builds for this bench (`AKV_BUSY_BIN` names another, e.g. an
/// older build to compare with).
fn bin() -> PathBuf {
    std::env::var_os("AKV_BUSY_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_akv-sync")),
        PathBuf::from,
    )
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn cert_name(i: usize) -> String {
    format!("cert-{i:06}")
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match std::env::var(ROLE).as_deref() {
        Ok("emulator") => role_emulator(),
        Ok("service") => role_service(),
        _ => orchestrate(),
    }
}

// ----- the emulator child -----

fn role_emulator() {
    let n = env_usize("AKV_BUSY_N", 3000);
    let dir = PathBuf::from(std::env::var("AKV_BUSY_DIR").expect("AKV_BUSY_DIR"));
    let values: Vec<String> = (0..DISTINCT)
        .map(|i| {
            let spec = CertSpec {
                key: KeyKind::Rsa2048,
                issuer_key: KeyKind::Rsa2048,
                chain_len: 2,
                format: Format::Pkcs12,
                subject_cn: format!("busy-{i}"),
                ..CertSpec::default()
            };
            let g = generator::generate(&spec).expect("generate");
            generator::secret_value(&g, Format::Pkcs12)
                .expect("pkcs12")
                .to_string()
        })
        .collect();
    let rt = akv_sync::cli::ports::runtime().expect("runtime");
    rt.block_on(async {
        let emulator = akv_sync_emulator::start(EmulatorOptions {
            state_dir: dir.join("emulator"),
            arc_token_dir: dir.join("arc"),
            ..EmulatorOptions::default()
        })
        .await
        .expect("emulator");
        let control = emulator.control();
        for i in 0..n {
            control
                .set_raw_secret(
                    VAULT,
                    &cert_name(i),
                    &values[i % DISTINCT],
                    Format::Pkcs12.content_type(),
                )
                .expect("secret");
        }
        println!("{}", emulator.startup_info());
        std::io::stdout().flush().unwrap();
        // Serve until the orchestrator closes our stdin.
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
        emulator.shutdown().await;
    });
}

// ----- the service child -----

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Burn `cpu` of this thread's CPU time (not wall time: a preempted request takes longer).
fn burn(cpu: Duration) {
    let until = thread_cpu() + cpu;
    let mut x = 0u64;
    while thread_cpu() < until {
        for i in 0..200u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}

fn role_service() {
    let workers = env_usize("AKV_BUSY_WORKERS", cores());
    let clients = env_usize("AKV_BUSY_CLIENTS", workers);
    let work = Duration::from_micros(env_usize("AKV_BUSY_REQUEST_US", 2000) as u64);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let listener = Arc::new(listener);
    for _ in 0..workers {
        let listener = listener.clone();
        std::thread::spawn(move || {
            loop {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let _ = s.set_nodelay(true);
                let mut b = [0u8; 1];
                while s.read_exact(&mut b).is_ok() {
                    burn(work);
                    if s.write_all(&b).is_err() {
                        break;
                    }
                }
            }
        });
    }
    // Latencies (µs) of the requests answered in the current window.
    let samples: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    for _ in 0..clients {
        let samples = samples.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            let mut b = [7u8; 1];
            loop {
                let t = Instant::now();
                s.write_all(&b).expect("request");
                s.read_exact(&mut b).expect("answer");
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                samples.lock().unwrap().push(us);
            }
        });
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut opened = Instant::now();
    for line in std::io::stdin().lock().lines() {
        match line.expect("stdin").trim() {
            "start" => {
                samples.lock().unwrap().clear();
                opened = Instant::now();
                println!("started");
            }
            "stop" => {
                let secs = opened.elapsed().as_secs_f64();
                let mut v = std::mem::take(&mut *samples.lock().unwrap());
                v.sort_unstable();
                let q = |p: f64| {
                    v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1))
                        .map_or(f64::NAN, |&us| us as f64 / 1000.0)
                };
                println!(
                    "{}",
                    json!({
                        "secs": secs, "requests": v.len(), "rps": v.len() as f64 / secs,
                        "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": q(1.0),
                    })
                );
            }
            _ => {}
        }
        std::io::stdout().flush().unwrap();
    }
}

// ----- cgroups -----

/// Sibling cgroups for the service and the agent, with the CPU controller: cgroup v2 (`cpu.weight`)
/// where the CPU controller is there, else v1 (`cpu.shares`, set as systemd maps `CPUWeight=`:
/// weight × 1024 / 100).
struct Groups {
    root: PathBuf,
    v2: bool,
}

impl Groups {
    fn create() -> Result<Groups, String> {
        let unified = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(unified.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu"));
        let root = if v2 {
            unified.join("akv-busy")
        } else {
            unified.join("cpu/akv-busy")
        };
        let mk = |p: &Path| match std::fs::create_dir(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot create {}: {e}", p.display())),
        };
        if v2 {
            std::fs::write(unified.join("cgroup.subtree_control"), "+cpu")
                .map_err(|e| format!("cannot enable the cpu controller: {e}"))?;
            mk(&root)?;
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu")
                .map_err(|e| format!("cannot enable the cpu controller below: {e}"))?;
            // io is optional (not every kernel has io.weight).
            let _ = std::fs::write(unified.join("cgroup.subtree_control"), "+io");
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+io");
        } else {
            mk(&root)?;
        }
        mk(&root.join("service"))?;
        mk(&root.join("agent"))?;
        let g = Groups { root, v2 };
        g.set_weight("service", 100)?;
        g.set_weight("agent", 100)?;
        Ok(g)
    }

    fn kind(&self) -> &'static str {
        if self.v2 {
            "cgroup v2 cpu.weight"
        } else {
            "cgroup v1 cpu.shares (= CPUWeight × 1024 / 100, as systemd maps it)"
        }
    }

    fn set_weight(&self, group: &str, weight: u32) -> Result<(), String> {
        let (file, value) = if self.v2 {
            ("cpu.weight", weight.to_string())
        } else {
            (
                "cpu.shares",
                (u64::from(weight) * 1024 / 100).max(2).to_string(),
            )
        };
        let path = self.root.join(group).join(file);
        std::fs::write(&path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn add(&self, group: &str, pid: u32) {
        let path = self.root.join(group).join("cgroup.procs");
        std::fs::write(&path, pid.to_string())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        for g in ["service", "agent", ""] {
            let _ = std::fs::remove_dir(self.root.join(g));
        }
    }
}

// ----- the orchestrator -----

struct Service {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Service {
    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("service stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("service stdout");
        line
    }
    fn start(&mut self) {
        assert_eq!(self.command("start").trim(), "started");
    }
    fn stop(&mut self) -> Value {
        serde_json::from_str(&self.command("stop")).expect("service stats")
    }
}

fn self_child(role: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(ROLE, role)
        .env("AKV_BUSY_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// How the agent runs in a phase.
#[derive(Clone, Copy)]
struct Priorities {
    /// Nice value and I/O priority, applied to the agent process before exec.
    courtesy: Option<Courtesy>,
    /// The agent cgroup's weight (with cgroups).
    weight: u32,
}

struct Sync {
    wall_s: f64,
    cpu_s: f64,
    user_s: f64,
    sys_s: f64,
    installed: usize,
    peak_threads: usize,
}

fn children_cpu() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (secs(u.user_time()), secs(u.system_time()))
}

fn threads_of(pid: u32) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// `akv-sync once` over the settings, into a fresh store.
fn sync(
    settings: &Path,
    store: &Path,
    env: &[(String, String)],
    n: usize,
    prio: Priorities,
    groups: Option<&Groups>,
) -> Sync {
    let _ = std::fs::remove_dir_all(store);
    let mut cmd = Command::new(bin());
    cmd.args(["once", "--settings"])
        .arg(settings)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its info log (one line per certificate) is part of its cost; the exit status and
        // the summary's count of installed certificates say whether it worked.
        .stderr(Stdio::null());
    if let Some(c) = prio.courtesy {
        // SAFETY: `apply_to_this_thread` is async-signal-safe (two system calls).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || c.apply_to_this_thread());
        }
    }
    if let Some(g) = groups {
        g.set_weight("agent", prio.weight).expect("agent weight");
    }
    let (user0, sys0) = children_cpu();
    let t = Instant::now();
    let mut child = cmd.spawn().expect("akv-sync once");
    let pid = child.id();
    if let Some(g) = groups {
        g.add("agent", pid);
    }
    // Read the summary while sampling the agent's thread count.
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        installed_count(&lines)
    });
    let mut peak_threads = 0;
    while !reader.is_finished() {
        peak_threads = peak_threads.max(threads_of(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let installed = reader.join().unwrap();
    let status = child.wait().expect("wait");
    let wall_s = t.elapsed().as_secs_f64();
    assert!(status.success(), "akv-sync once failed: {status}");
    assert_eq!(installed, n, "certificates installed");
    let (user1, sys1) = children_cpu();
    Sync {
        wall_s,
        cpu_s: user1 - user0 + sys1 - sys0,
        user_s: user1 - user0,
        sys_s: sys1 - sys0,
        installed,
        peak_threads,
    }
}

struct Row {
    phase: String,
    service: Option<Value>,
    sync: Option<Sync>,
}

fn orchestrate() {
    let n = env_usize("AKV_BUSY_N", 3000);
    let window = Duration::from_secs(env_usize("AKV_BUSY_WINDOW_S", 20) as u64);
    let base = std::env::var_os("AKV_BUSY_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    // Courteous phases: the unit's priorities, or `AKV_BUSY_WEIGHTS` (comma-separated cgroup
    // weights, each with the unit's nice and I/O priority) to compare several.
    let weights: Vec<u32> = std::env::var("AKV_BUSY_WEIGHTS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![COURTESY.cpu_weight]);
    let groups = if std::env::var("AKV_BUSY_CGROUPS").as_deref() == Ok("0") {
        None
    } else {
        match Groups::create() {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("busy: no cgroups ({e}): nice and I/O priority only");
                None
            }
        }
    };
    eprintln!(
        "busy: N = {n}, {} cores, window {} s, {}",
        cores(),
        window.as_secs(),
        groups.as_ref().map_or("no cgroups", |g| g.kind())
    );

    eprintln!("busy: starting the emulator");
    let mut emu = self_child("emulator", dir.path())
        .env("AKV_BUSY_N", n.to_string())
        .spawn()
        .expect("emulator");
    let mut line = String::new();
    BufReader::new(emu.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("emulator info");
    let info: Value = serde_json::from_str(line.trim()).expect("emulator info JSON");
    let env = akv_sync::azure::net::env_for_emulator(
        info["vault_addr"].as_str().unwrap().parse().unwrap(),
        Path::new(info["ca_file"].as_str().unwrap()),
        info["imds_endpoint"].as_str().unwrap(),
    );
    let store = dir.path().join("store");
    let certs: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "url": format!("https://{VAULT}.vault.azure.net/secrets/{}", cert_name(i)),
                "certificateStoreLocation": store.display().to_string(),
            })
        })
        .collect();
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        json!({ "secretsManagementSettings": {
            "pollingIntervalInS": "3600", "observedCertificates": certs,
        } })
        .to_string(),
    )
    .unwrap();
    let unconstrained = Priorities {
        courtesy: None,
        weight: 100,
    };
    let mut rows = Vec::new();

    eprintln!("busy: sync alone (idle machine)");
    let alone = sync(&settings, &store, &env, n, unconstrained, groups.as_ref());
    rows.push(Row {
        phase: "sync alone, unconstrained (idle machine)".into(),
        service: None,
        sync: Some(alone),
    });

    let mut child = self_child("service", dir.path()).spawn().expect("service");
    if let Some(g) = &groups {
        g.add("service", child.id());
    }
    let mut service = Service {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };
    let mut ready = String::new();
    service.stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    // Let the service settle before the first window.
    std::thread::sleep(Duration::from_secs(2));

    eprintln!("busy: service alone ({} s)", window.as_secs());
    service.start();
    std::thread::sleep(window);
    let stats = service.stop();
    eprintln!("busy: service alone {stats}");
    rows.push(Row {
        phase: "service alone".into(),
        service: Some(stats),
        sync: None,
    });

    let mut phases = vec![(
        "beside an unconstrained sync (nice 0, weight 100)".to_owned(),
        unconstrained,
    )];
    for w in weights {
        let c = Courtesy {
            cpu_weight: w,
            ..COURTESY
        };
        let what = if groups.is_some() {
            format!(
                "beside the courteous sync (nice {}, weight {w}, I/O best-effort {})",
                c.nice, c.io_priority
            )
        } else {
            format!(
                "beside the courteous sync (nice {}, I/O best-effort {}; no cgroups)",
                c.nice, c.io_priority
            )
        };
        phases.push((
            what,
            Priorities {
                courtesy: Some(c),
                weight: w,
            },
        ));
    }
    for (phase, prio) in phases {
        eprintln!("busy: {phase}");
        service.start();
        let s = sync(&settings, &store, &env, n, prio, groups.as_ref());
        let stats = service.stop();
        eprintln!(
            "busy: sync {:.1} s, {:.2} s CPU, {} threads; service {stats}",
            s.wall_s, s.cpu_s, s.peak_threads
        );
        rows.push(Row {
            phase,
            service: Some(stats),
            sync: Some(s),
        });
    }

    drop(service.stdin);
    let _ = service.child.kill();
    let _ = service.child.wait();
    drop(emu.stdin.take());
    let _ = emu.wait();
    drop(groups);
    print_table(n, &rows);
}

fn print_table(n: usize, rows: &[Row]) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let alone = rows
        .iter()
        .find(|r| r.sync.is_none())
        .and_then(|r| r.service.clone())
        .unwrap();
    let base_sync = rows
        .iter()
        .find(|r| r.service.is_some() && r.sync.is_some())
        .and_then(|r| r.sync.as_ref())
        .map_or(f64::NAN, |s| s.wall_s);
    println!();
    println!(
        "| Phase (N = {n}) | service p50 ms | service p99 ms | p99 / alone | service req/s | throughput / alone | sync wall s | sync / unconstrained beside | agent CPU s (user + sys) | CPU per cert ms | agent peak threads | installed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (p50, p99, p99x, rps, rpsx) = match &r.service {
            Some(s) => (
                format!("{:.2}", f(s, "p50_ms")),
                format!("{:.2}", f(s, "p99_ms")),
                format!("{:.2}", f(s, "p99_ms") / f(&alone, "p99_ms")),
                format!("{:.0}", f(s, "rps")),
                format!("{:.2}", f(s, "rps") / f(&alone, "rps")),
            ),
            None => Default::default(),
        };
        let (wall, wallx, cpu, per, threads, installed) = match &r.sync {
            Some(s) => (
                format!("{:.1}", s.wall_s),
                if r.service.is_some() {
                    format!("{:.2}", s.wall_s / base_sync)
                } else {
                    String::new()
                },
                format!("{:.2} ({:.2} + {:.2})", s.cpu_s, s.user_s, s.sys_s),
                format!("{:.2}", s.cpu_s * 1000.0 / n as f64),
                s.peak_threads.to_string(),
                s.installed.to_string(),
            ),
            None => Default::default(),
        };
        println!(
            "| {} | {p50} | {p99} | {p99x} | {rps} | {rpsx} | {wall} | {wallx} | {cpu} | {per} | {threads} | {installed} |",
            r.phase
        );
    }
}

/// How many certificates `once` installed: its summary's counts line (`N certificate(s): X
/// installed, …`), or, from a build older than that summary (`AKV_BUSY_BIN`), its
/// `installed  <id>  <version>` lines.
fn installed_count(lines: &[String]) -> usize {
    lines
        .iter()
        .find_map(|l| {
            let (_, rest) = l.split_once(" certificate(s): ")?;
            rest.split_once(" installed")?.0.parse().ok()
        })
        .unwrap_or_else(|| lines.iter().filter(|l| l.starts_with("installed")).count())
}
