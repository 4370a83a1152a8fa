//! `akv-sync demo`: what it tells a person to try must work as printed.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_akv-sync");

#[test]
fn the_try_in_another_terminal_commands_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--once", "--dir"])
        .arg(dir.path().join("demo"))
        // A fresh clone: no akv-sync on PATH, only the system's tools.
        .env("PATH", "/usr/bin:/bin")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tries: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("in another terminal"))
        .skip(1)
        .take_while(|l| l.starts_with("   "))
        .collect();
    assert!(tries.len() >= 2, "{stdout}");
    for line in tries {
        let words: Vec<&str> = line.split_whitespace().collect();
        let run = Command::new(words[0])
            .args(&words[1..])
            .env("PATH", "/usr/bin:/bin")
            .current_dir(dir.path())
            .output();
        let run = run.unwrap_or_else(|e| panic!("`{line}` cannot start: {e}"));
        assert!(
            run.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
