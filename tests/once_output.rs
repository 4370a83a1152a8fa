//! What `akv-sync once` shows an operator: plain, stable lines off a terminal; a progress bar
//! with only warnings and errors above it on a terminal; one JSON document with `--json`.

mod daemon_support;

use std::process::{Command, Output, Stdio};

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind};
use daemon_support::*;
use serde_json::json;

fn create(env: &Env, names: &[&str]) {
    let c = env.emulator.control();
    for n in names {
        c.create_certificate(
            "alpha",
            n,
            CertSpec {
                key: KeyKind::EcP256,
                issuer_key: KeyKind::EcP256,
                chain_len: 2,
                format: Format::Pem,
                ..CertSpec::default()
            },
        )
        .unwrap();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `web` and `api` exist in the vault, `missing` does not.
fn three(env: &Env, file: &str) -> String {
    env.write_settings(
        file,
        &[("alpha", "web"), ("alpha", "api"), ("alpha", "missing")],
        json!({}),
        json!({}),
    )
    .display()
    .to_string()
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `akv-sync <args>` on a pseudo-terminal (util-linux `script`): stdout and stderr are the
/// terminal, and everything it drew comes back, escape codes included, as `script`'s stdout.
fn on_a_terminal(env: &Env, args: &[&str]) -> Output {
    let inner = env.command(args);
    let line: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line.join(" "), "/dev/null"]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script (package bsdutils) is installed by scripts/install-deps")
}

/// The lines a terminal would end up showing, roughly: escape sequences removed, carriage
/// returns and newlines as line ends.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\r' {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn off_a_terminal_once_prints_the_counts_then_only_the_failures_in_plain_lines() {
    let env = Env::start();
    create(&env, &["web", "api"]);
    let settings = three(&env, "s.json");
    let out = env
        .command(&["once", "--settings", &settings, "--attempts", "1"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "one is missing: {stdout}{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "3 certificate(s): 2 installed, 0 already current, 1 failed",
        "{stdout}"
    );
    assert_eq!(lines.len(), 2, "only the failure is listed: {stdout}");
    assert!(
        lines[1].starts_with("FAILED     alpha/missing in ") && lines[1].contains("not found"),
        "{stdout}"
    );
    // Off a terminal the log keeps --log's level (info): per-certificate lines for journald.
    assert!(stderr.contains("installed new version"), "{stderr}");
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "no escape codes off a terminal"
    );

    // --list: every certificate, now found current.
    let out = env
        .command(&["once", "--settings", &settings, "--attempts", "1", "--list"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let control = env.emulator.control();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "3 certificate(s): 0 installed, 2 already current, 1 failed",
        "{stdout}"
    );
    assert_eq!(lines.len(), 4, "{stdout}");
    for (line, name) in lines[1..3].iter().zip(["web", "api"]) {
        let version = control.current_version("alpha", name).unwrap();
        assert!(
            line.starts_with(&format!("current    alpha/{name} in ")) && line.ends_with(&version),
            "{stdout}"
        );
    }
    assert!(
        lines[3].starts_with("FAILED     alpha/missing in "),
        "{stdout}"
    );
}

#[test]
fn json_prints_one_document_with_every_certificate_and_nothing_else() {
    let env = Env::start();
    create(&env, &["web", "api"]);
    let settings = three(&env, "s.json");
    let out = env
        .command(&["once", "--settings", &settings, "--attempts", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The whole of stdout is the document.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(
        (&doc["installed"], &doc["current"], &doc["failed"]),
        (&json!(2), &json!(0), &json!(1))
    );
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3);
    let store = env.store.display();
    let control = env.emulator.control();
    for (cert, name) in certs.iter().zip(["web", "api"]) {
        assert_eq!(cert["id"], format!("alpha/{name} in {store}"));
        assert_eq!(cert["outcome"], "installed");
        assert_eq!(
            cert["version"].as_str(),
            control.current_version("alpha", name).as_deref()
        );
        assert!(cert["error"].is_null());
    }
    assert_eq!(certs[2]["id"], format!("alpha/missing in {store}"));
    assert_eq!(certs[2]["outcome"], "failed");
    assert!(certs[2]["version"].is_null());
    assert!(
        certs[2]["error"].as_str().unwrap().contains("not found"),
        "{doc}"
    );

    // A refused entry is there too, with its JSON path as id.
    let refused = env.write_settings(
        "refused.json",
        &[],
        json!({ "observedCertificates": [
            { "url": "https://alpha.vault.azure.net/secrets/web", "certificateStoreLocation": store.to_string() },
            { "url": "http://alpha.vault.azure.net/secrets/plain", "certificateStoreLocation": store.to_string() },
        ] }),
        json!({}),
    );
    let out = env
        .command(&["once", "--settings", refused.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs[0]["outcome"], "current");
    assert_eq!(certs[1]["outcome"], "refused");
    assert!(
        certs[1]["id"]
            .as_str()
            .unwrap()
            .ends_with("observedCertificates[1]"),
        "{doc}"
    );
    assert_eq!(doc["failed"], 1);
}

#[test]
fn on_a_terminal_a_bar_shows_with_warnings_above_it_and_no_info_lines() {
    let env = Env::start();
    create(&env, &["web", "api"]);
    let settings = three(&env, "s.json");
    let out = on_a_terminal(&env, &["once", "--settings", &settings, "--attempts", "1"]);
    let raw = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one is missing: {raw}");
    // The bar was drawn (this really ran on a terminal).
    assert!(raw.contains("/3 certificates"), "no bar: {raw:?}");
    let lines = screen_lines(&raw);
    // No per-certificate INFO line, nor any other.
    assert!(!raw.contains("installed new version"), "{raw:?}");
    assert!(!lines.iter().any(|l| l.contains(" INFO ")), "{lines:#?}");
    // The failing certificate's warning is shown, as a line of its own (above the bar,
    // not drawn through it).
    let warning = lines
        .iter()
        .find(|l| l.contains("first download failed"))
        .unwrap_or_else(|| panic!("no warning: {lines:#?}"));
    assert!(
        warning.contains(" WARN ")
            && warning.contains("alpha/missing")
            && !warning.contains("certificates"),
        "{warning}"
    );
    // And the summary names it.
    assert!(
        lines
            .iter()
            .any(|l| l == "3 certificate(s): 2 installed, 0 already current, 1 failed"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FAILED     alpha/missing in ") && l.contains("not found")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("installed  ")),
        "no per-certificate list without --list: {lines:#?}"
    );

    // --verbose brings the INFO lines back.
    create(&env, &["other"]);
    let settings = env
        .write_settings("v.json", &[("alpha", "other")], json!({}), json!({}))
        .display()
        .to_string();
    let out = on_a_terminal(&env, &["once", "--settings", &settings, "--verbose"]);
    let raw = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{raw}");
    let lines = screen_lines(&raw);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("installed new version")),
        "{lines:#?}"
    );
}
