//! Crash safety: a writer killed with SIGKILL at random moments never leaves a partial
//! file, a missing or dangling link, or a temporary file that survives a restart.
//!
//! The writer is this test binary itself, re-executed with the ignored child test's exact
//! name and an environment variable saying where the store is: no extra binary needed.

mod store_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use akv_sync::store::{InstallRequest, Output, Store};
use rand::Rng;
use store_support::*;

const CHILD_TEST: &str = "crash_child_rotates_until_killed";
const STORE_ENV: &str = "AKV_SYNC_STORE_CRASH_STORE";
const FIXTURES_ENV: &str = "AKV_SYNC_STORE_CRASH_FIXTURES";
const CHILD_ENV: &str = "AKV_SYNC_STORE_CRASH_CHILD";
const FIXTURES: usize = 3;
const KILLS: usize = 200;

fn load_fixtures(dir: &Path) -> Vec<Vec<u8>> {
    (0..FIXTURES)
        .map(|i| std::fs::read(dir.join(format!("f{i}.pem"))).unwrap())
        .collect()
}

/// Version `{child:016x}{round:016x}` (32 hex digits, as Key Vault's) always carries
/// fixture `(child + round) % FIXTURES`.
fn expected<'a>(fixtures: &'a [Vec<u8>], version: &str) -> &'a [u8] {
    let (child, round) = version.split_at(16);
    let i = usize::from_str_radix(child, 16).unwrap() + usize::from_str_radix(round, 16).unwrap();
    &fixtures[i % FIXTURES]
}

#[test]
#[ignore = "the writer process of sigkill_at_random_moments_never_leaves_a_partial_file_or_link; run by it"]
fn crash_child_rotates_until_killed() {
    let store = PathBuf::from(std::env::var_os(STORE_ENV).expect("run by the crash test"));
    let fixtures = load_fixtures(Path::new(&std::env::var_os(FIXTURES_ENV).unwrap()));
    let child: usize = std::env::var(CHILD_ENV).unwrap().parse().unwrap();
    let store = Store::open(&store).unwrap();
    let mut stdout = std::io::stdout();
    for round in 0.. {
        let version = format!("{child:016x}{round:016x}");
        let pem = expected(&fixtures, &version);
        let outputs = [Output {
            file_name: "fullchain.pem",
            content: pem,
            secret: true,
        }];
        store
            .install(&InstallRequest {
                vault: "vault1",
                name: "web",
                version: &version,
                full_chain_pem: pem,
                link_name: Some("custom.pem"),
                acl: None,
                outputs: &outputs,
                prune_keep: Some(3),
            })
            .unwrap();
        writeln!(stdout, "ROTATED {version}").unwrap();
        stdout.flush().unwrap();
    }
}

/// What a reader would see right after the crash, before anything is cleaned.
fn check_after_crash(store_path: &Path, fixtures: &[Vec<u8>]) -> usize {
    let store = Store::open(store_path).unwrap();
    let current = store
        .current("vault1", "web")
        .unwrap()
        .expect("the link resolves after a crash");
    let through_link = std::fs::read(store_path.join("vault1.web")).unwrap();
    // Compared without printing: the bytes hold a (throwaway) private key.
    assert!(
        through_link == expected(fixtures, &current.version),
        "link content for {} is not that version's complete PEM",
        current.version
    );
    assert!(through_link.ends_with(b"-----END PRIVATE KEY-----\n"));
    // The custom link is swapped just after the main one: it may lag one version, never more
    // wrong than that, and always complete.
    let custom_target = std::fs::read_link(store_path.join("custom.pem")).unwrap();
    let custom_version = custom_target
        .to_str()
        .unwrap()
        .strip_prefix("vault1.web.")
        .unwrap()
        .to_owned();
    assert!(
        std::fs::read(store_path.join("custom.pem")).unwrap()
            == expected(fixtures, &custom_version),
        "custom link content for {custom_version} is not that version's complete PEM"
    );
    // Every version file that exists is complete, and 0600.
    for v in store.versions("vault1", "web").unwrap() {
        let p = store_path.join(format!("vault1.web.{v}"));
        assert!(
            std::fs::read(&p).unwrap() == expected(fixtures, &v),
            "version file {v} is not complete"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let output = std::fs::read(store_path.join("fullchain.pem")).unwrap();
    assert!(
        fixtures.contains(&output),
        "extra output is one complete version"
    );

    let left = temporaries(store_path).len();
    let cleaned = store.clean_temporaries().unwrap();
    assert_eq!(cleaned, left);
    assert!(
        temporaries(store_path).is_empty(),
        "no temporary file after restart"
    );
    left
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_partial_file_or_link() {
    let s = scratch();
    let fixtures_dir = s.dir.path().join("fixtures");
    std::fs::create_dir(&fixtures_dir).unwrap();
    for i in 0..FIXTURES {
        std::fs::write(
            fixtures_dir.join(format!("f{i}.pem")),
            pem_fixture(s.dir.path(), &format!("leaf{i}")),
        )
        .unwrap();
    }
    let fixtures = load_fixtures(&fixtures_dir);
    for i in 0..FIXTURES {
        assert!(key_matches_leaf(&fixtures_dir.join(format!("f{i}.pem"))));
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let started = Instant::now();
    let (mut completed, mut interrupted_mid_write) = (0usize, 0usize);
    let mut rotation_time = Duration::from_millis(1);

    for child in 0..KILLS {
        let mut proc = Command::new(&exe)
            .args([
                CHILD_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STORE_ENV, &s.store)
            .env(FIXTURES_ENV, &fixtures_dir)
            .env(CHILD_ENV, child.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
        // Let it finish 1 to 3 rotations (readiness signal: its "ROTATED" lines), then kill
        // it at a random point of the following one.
        let wanted = rng.random_range(1..=3);
        let mut seen = 0;
        let mut last = Instant::now();
        while seen < wanted {
            let line = lines.next().expect("writer alive").unwrap();
            if line.starts_with("ROTATED ") {
                // The first line also includes the process start; time only later ones.
                if seen > 0 {
                    rotation_time = (rotation_time + last.elapsed()) / 2;
                }
                seen += 1;
                last = Instant::now();
            }
        }
        // Not a synchronisation: a random delay within about one rotation, busy-waited so it
        // is not rounded up to a scheduler tick, so that kills land at every stage
        // (temporary created, ACL set, content half written, renamed, link swapped…).
        let delay = rotation_time.mul_f64(rng.random_range(0.0..1.2));
        let t = Instant::now();
        while t.elapsed() < delay {
            std::hint::spin_loop();
        }
        proc.kill().unwrap();
        proc.wait().unwrap();
        completed += seen;
        interrupted_mid_write += usize::from(check_after_crash(&s.store, &fixtures) > 0);
    }
    // The file a reader gets through the link: its key matches its leaf.
    assert!(key_matches_leaf(&s.store.join("vault1.web")));
    eprintln!(
        "{KILLS} kills, {completed} completed rotations, {interrupted_mid_write} kills left temporaries, \
         mean rotation {rotation_time:?}, {:?} in all",
        started.elapsed()
    );
    assert!(
        interrupted_mid_write > 0,
        "no kill landed in the middle of a write"
    );
}
