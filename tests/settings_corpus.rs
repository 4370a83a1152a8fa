//! The settings corpus: every file under `tests/settings/` against its expected outcome in
//! `tests/settings/expected.json`, through the library (`akv_sync_config::parse`) and through
//! the real `akv-sync validate` binary (exit codes 0/2, text and `--json` output).
//!
//! Each manifest entry is either `"outcome": "ok"` with the wrapper, schema, identity kind, one
//! line per certificate (`vault/name@version in store [link name]`) and the JSON paths of the
//! warnings; or `"outcome": "errors"` (the document is refused: nothing syncs) with every
//! `[ErrorKind, JSON path]` expected; or `"outcome": "refused"` (mistakes inside single
//! observed certificates: those are refused, the `certificates` listed still sync).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use akv_sync_config::{Identity, Parsed, parse};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expected {
    about: String,
    outcome: String,
    wrapper: Option<String>,
    schema: Option<String>,
    identity: Option<String>,
    certificates: Option<Vec<String>>,
    warnings: Option<Vec<String>>,
    errors: Option<Vec<(String, String)>>,
    /// Errors of the host checks (`validate` without `--no-host-checks`).
    host_errors: Option<Vec<(String, String)>>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/settings")
}

const MANIFEST: &str = "expected.json";

fn manifest() -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(corpus_dir().join(MANIFEST)).expect("read the manifest");
    serde_json::from_str(&text).expect("the manifest is valid")
}

fn corpus_files() -> BTreeSet<String> {
    std::fs::read_dir(corpus_dir())
        .expect("read tests/settings")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|n| n != MANIFEST)
        .collect()
}

fn read(name: &str) -> String {
    std::fs::read_to_string(corpus_dir().join(name)).expect("read a corpus file")
}

fn identity_kind(i: &Identity) -> &'static str {
    match i {
        Identity::SystemAssigned { .. } => "SystemAssigned",
        Identity::UserAssigned { .. } => "UserAssigned",
        Identity::UserAssignedByResourceId { .. } => "UserAssignedByResourceId",
        Identity::Arc { .. } => "Arc",
    }
}

fn certificate_lines(p: &Parsed) -> Vec<String> {
    p.settings
        .certificates
        .iter()
        .map(|c| {
            let mut line = format!(
                "{}/{}@{} in {}",
                c.url.vault,
                c.url.name,
                c.url.version.as_deref().unwrap_or("latest"),
                c.store.display()
            );
            if let Some(link) = &c.link_name {
                line.push_str(&format!(" link {link}"));
            }
            line
        })
        .collect()
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// What the library says about one file, compared with the manifest; `Err` says how it differs.
fn check_with_library(name: &str, expected: &Expected) -> Result<(), String> {
    let result = parse(&read(name));
    let errors_are = |errors: &[akv_sync_config::ConfigError]| {
        let got = sorted(
            errors
                .iter()
                .map(|e| (format!("{:?}", e.kind), e.path.clone()))
                .collect(),
        );
        let want = sorted(expected.errors.clone().unwrap_or_default());
        if got == want {
            Ok(())
        } else {
            Err(format!("got errors {got:#?}\nexpected {want:#?}"))
        }
    };
    match (expected.outcome.as_str(), result) {
        // Mistakes in single certificates: those are refused, the rest is usable.
        ("refused", Ok(p)) if !p.refused.is_empty() => {
            errors_are(&p.refused)?;
            let want = expected.certificates.clone().unwrap_or_default();
            let got = certificate_lines(&p);
            if got == want {
                Ok(())
            } else {
                Err(format!("accepted {got:#?}\nexpected {want:#?}"))
            }
        }
        ("refused", Ok(_)) => Err("expected refused certificates, got none".into()),
        ("refused", Err(errors)) => Err(format!(
            "expected only single certificates refused, the whole file was: {errors:#?}"
        )),
        (_, Ok(p)) if !p.refused.is_empty() => Err(format!(
            "expected outcome {:?}, got certificates refused (outcome \"refused\"): {:#?}",
            expected.outcome, p.refused
        )),
        ("ok", Ok(p)) => {
            let got = (
                format!("{:?}", p.settings.wrapper),
                format!("{:?}", p.settings.schema),
                identity_kind(&p.settings.identity).to_owned(),
                certificate_lines(&p),
                p.warnings
                    .iter()
                    .map(|w| w.path.clone())
                    .collect::<Vec<_>>(),
            );
            let want = (
                expected.wrapper.clone().unwrap_or_default(),
                expected.schema.clone().unwrap_or_default(),
                expected.identity.clone().unwrap_or_default(),
                expected.certificates.clone().unwrap_or_default(),
                expected.warnings.clone().unwrap_or_default(),
            );
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:#?}\nexpected {want:#?}"))
            }
        }
        ("errors", Err(errors)) => errors_are(&errors),
        ("ok", Err(errors)) => Err(format!("expected ok, got errors {errors:#?}")),
        ("errors", Ok(p)) => Err(format!("expected errors, got {:#?}", p.settings)),
        (other, _) => Err(format!("unknown outcome {other:?} in the manifest")),
    }
}

#[test]
fn every_corpus_file_has_a_manifest_entry_and_every_entry_a_file() {
    let files = corpus_files();
    let entries: BTreeSet<String> = manifest().into_keys().collect();
    let without_entry: Vec<_> = files.difference(&entries).collect();
    let without_file: Vec<_> = entries.difference(&files).collect();
    assert!(
        without_entry.is_empty(),
        "corpus files without a manifest entry: {without_entry:?}"
    );
    assert!(
        without_file.is_empty(),
        "manifest entries without a file: {without_file:?}"
    );
}

#[test]
fn the_corpus_covers_at_least_40_files_and_the_documentation_examples() {
    let m = manifest();
    assert!(m.len() >= 40, "only {} corpus files", m.len());
    for (name, e) in &m {
        assert!(!e.about.is_empty(), "{name} says nothing about itself");
    }
    let documentation_ok = m
        .iter()
        .filter(|(n, e)| n.starts_with("doc-") && e.outcome == "ok")
        .count();
    assert!(
        documentation_ok >= 5,
        "the documentation's examples must be in the corpus and valid"
    );
    let kinds: BTreeSet<&str> = m
        .values()
        .flat_map(|e| e.errors.iter().flatten().map(|(k, _)| k.as_str()))
        .collect();
    for kind in [
        "JsonInString",
        "EscapedQuotes",
        "MisplacedAuthenticationSettings",
        "BadResourceId",
        "BadClientId",
        "CertificatesPath",
        "NotHttps",
        "NotVaultHost",
        "BadPollingInterval",
        "UnsafeName",
        "BadStoreLocation",
        "BadAcl",
        "BadLogging",
        "BadExtension",
        "Conflict",
        "Placeholder",
    ] {
        assert!(kinds.contains(kind), "no corpus file shows {kind}");
    }
}

#[test]
fn every_corpus_file_parses_to_its_expected_outcome() {
    let failures: Vec<String> = manifest()
        .iter()
        .filter_map(|(name, e)| {
            check_with_library(name, e)
                .err()
                .map(|why| format!("{name}: {why}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} corpus files differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every prefix of every corpus file, and each file with bytes swapped for JSON punctuation,
/// gives a result or errors, never a panic.
#[test]
fn no_input_makes_the_parser_panic() {
    let dir = corpus_dir();
    let mut inputs = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &i in boundaries.iter().step_by(9) {
            let _ = parse(&text[..i]);
            inputs += 1;
        }
        for (n, &i) in boundaries.iter().enumerate().step_by(17) {
            let swap = ['"', '\\', '/', '*', ',', '}', ']', '[', '{', ':'][n % 10];
            let mut mutated = text.clone();
            let end = boundaries.get(n + 1).copied().unwrap_or(text.len());
            mutated.replace_range(i..end, &swap.to_string());
            let _ = parse(&mutated);
            inputs += 1;
        }
    }
    assert!(inputs > 1000, "only {inputs} inputs tried");
}

// ---------------------------------------------------------------------------------------------
// The binary

fn validate(file: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_akv-sync"))
        .arg("validate")
        .arg("--settings")
        .arg(file)
        .args(flags)
        .output()
        .expect("run akv-sync")
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn error_pairs(report: &serde_json::Value) -> Vec<(String, String)> {
    sorted(
        report["errors"]
            .as_array()
            .expect("errors array")
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

#[test]
fn validate_json_gives_the_manifest_outcome_and_exit_code_for_every_file() {
    for (name, e) in manifest() {
        let out = validate(&corpus_dir().join(&name), &["--json", "--no-host-checks"]);
        let report = json_of(&out);
        if e.outcome == "ok" {
            assert_eq!(out.status.code(), Some(0), "{name}");
            assert_eq!(report["ok"], true, "{name}");
            assert_eq!(
                report["certificates"].as_array().unwrap().len(),
                e.certificates.as_ref().map_or(0, Vec::len),
                "{name}"
            );
            assert!(
                report["wrapper"].is_string() && report["schema"].is_string(),
                "{name}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{name}");
            assert_eq!(report["ok"], false, "{name}");
            assert_eq!(
                error_pairs(&report),
                sorted(e.errors.unwrap_or_default()),
                "{name}"
            );
        }
    }
}

#[test]
fn validate_prints_one_plan_line_per_certificate_and_the_wrapper_found() {
    for name in [
        "doc-arm-schema-v3.json",
        "doc-v2-string-array.json",
        "handler-settings-v3.json",
        "ext-full.json",
    ] {
        let out = validate(&corpus_dir().join(name), &["--no-host-checks"]);
        assert_eq!(out.status.code(), Some(0), "{name}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let expected = manifest()[name].certificates.clone().unwrap();
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("  vault="))
            .collect();
        assert_eq!(lines.len(), expected.len(), "{name}: {stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("found: ") && l.contains("schema")),
            "{stdout}"
        );
    }
    let out = validate(
        &corpus_dir().join("doc-arm-schema-v3.json"),
        &["--no-host-checks"],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(
        "  vault=myvault certificate=mycertificate1 version=latest store=/var/lib/waagent/Microsoft.Azure.KeyVault/app1 \
         link=/var/lib/waagent/Microsoft.Azure.KeyVault/app1/myvault.mycertificate1 \
         link=/var/lib/waagent/Microsoft.Azure.KeyVault/app1/app1Cert1 acl=user:app1+group:appGroup1,user:service1"
    ), "{stdout}");
}

#[test]
fn validate_prints_every_error_path_to_stderr_and_exits_2() {
    for name in [
        "err-many-mistakes.json",
        "doc-powershell-settings-verbatim.json",
        "err-powershell-escaped-quotes.json",
        "err-auth-beside-settings-arm.json",
    ] {
        let out = validate(&corpus_dir().join(name), &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(out.stdout.is_empty(), "{name}: errors go to stderr");
        let stderr = String::from_utf8(out.stderr).unwrap();
        for (kind, path) in manifest()[name].errors.clone().unwrap() {
            assert!(
                stderr.contains(&format!("  {path}: ")),
                "{name}: {path} missing from {stderr}"
            );
            assert!(
                stderr.contains(&format!("[{kind}]")),
                "{name}: {kind} missing from {stderr}"
            );
        }
    }
}

#[test]
fn validate_names_the_wrapper_and_schema_found_even_with_errors() {
    let out = validate(
        &corpus_dir().join("err-auth-beside-settings-arm.json"),
        &["--json"],
    );
    let report = json_of(&out);
    assert_eq!(report["wrapper"], "armResource");
    assert_eq!(report["schema"], "3.x");
    let out = validate(&corpus_dir().join("err-auth-beside-settings-arm.json"), &[]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("found: ARM extension resource (armResource), schema 3.x\n"),
        "{stderr}"
    );
    let out = validate(&corpus_dir().join("err-not-json.json"), &["--json"]);
    assert!(json_of(&out)["wrapper"].is_null());
}

#[test]
fn validate_reports_an_unreadable_file_with_its_path() {
    let missing = corpus_dir().join("no-such-file.json");
    let out = validate(&missing, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json_of(&out);
    assert_eq!(report["errors"][0]["kind"], "Unreadable");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-file.json")
    );
}

#[test]
fn host_checks_report_acl_principals_missing_on_this_host() {
    let name = "acl-unknown-user.json";
    assert!(
        nix::unistd::User::from_name("akvsync-no-such-user-7f3a")
            .unwrap()
            .is_none()
    );
    let out = validate(&corpus_dir().join(name), &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json_of(&out);
    assert_eq!(
        error_pairs(&report),
        sorted(manifest()[name].host_errors.clone().unwrap())
    );
    // The plan still lists both certificates: only the second one would fail.
    assert_eq!(report["certificates"].as_array().unwrap().len(), 2);
}

/// A user and a group created for one test, removed when dropped.
struct TempPrincipal {
    name: String,
}

impl TempPrincipal {
    fn create() -> TempPrincipal {
        let name = format!("akvs{}", std::process::id());
        let run = |cmd: &str, args: &[&str]| {
            let status = Command::new(cmd)
                .args(args)
                .status()
                .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
            assert!(
                status.success(),
                "{cmd} {args:?} failed (the tests run as root in CI)"
            );
        };
        run("groupadd", &["--system", &name]);
        run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--gid",
                &name,
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        TempPrincipal { name }
    }
}

impl Drop for TempPrincipal {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

#[test]
fn host_checks_accept_a_user_and_group_that_exist_and_refuse_them_once_removed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.json");
    let principal = TempPrincipal::create();
    let settings = serde_json::json!({
        "secretsManagementSettings": {
            "aclEnabled": true,
            "observedCertificates": [{
                "url": "https://myvault.vault.azure.net/secrets/web",
                "acls": [{"user": principal.name, "group": principal.name}]
            }]
        }
    });
    std::fs::write(&file, settings.to_string()).unwrap();
    let out = validate(&file, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("acl=user:{0}+group:{0}", principal.name)),
        "{stdout}"
    );

    let name = principal.name.clone();
    drop(principal);
    let out = validate(&file, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let p = "secretsManagementSettings.observedCertificates[0].acls[0]";
    assert_eq!(
        error_pairs(&json_of(&out)),
        vec![
            ("UnknownPrincipal".to_owned(), format!("{p}.group")),
            ("UnknownPrincipal".to_owned(), format!("{p}.user")),
        ],
        "{name} was removed"
    );
}

/// What a reader makes of a settings file: usable or not, and every error (kind, JSON path).
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    usable: bool,
    errors: Vec<(String, String)>,
}

/// The daemon's reader (`run`, `once`, `status`, a SIGHUP reload): host checks on.
fn daemon_verdict(file: &Path) -> Verdict {
    use akv_sync::cli::settings_file::{SettingsFileError, read};
    match read(file, true) {
        Ok(loaded) => Verdict {
            usable: true,
            errors: sorted(
                loaded
                    .parsed
                    .refused
                    .into_iter()
                    .chain(loaded.host_errors)
                    .map(|e| (format!("{:?}", e.kind), e.path))
                    .collect(),
            ),
        },
        Err(SettingsFileError::Invalid { errors, .. }) => Verdict {
            usable: false,
            errors: sorted(
                errors
                    .into_iter()
                    .map(|e| (format!("{:?}", e.kind), e.path))
                    .collect(),
            ),
        },
        Err(e) => panic!("{}: {e}", file.display()),
    }
}

/// `akv-sync validate --json` (host checks on). Usable: errors, if any, are single
/// certificates' (the daemon fails those and syncs the others).
fn validate_verdict(file: &Path) -> Verdict {
    let out = validate(file, &["--json"]);
    let report = json_of(&out);
    let errors = sorted(error_pairs(&report));
    let usable = report["usable"].as_bool().expect("usable");
    Verdict { usable, errors }
}

/// Each corpus file as written, and as PowerShell 5 (UTF-16 LE and BE with a byte-order mark)
/// and Notepad (UTF-8 with a byte-order mark) would save it.
#[test]
fn validate_and_the_daemons_reader_give_every_corpus_file_the_same_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in corpus_files() {
        let text = read(&name);
        let mut utf16le = vec![0xFF, 0xFE];
        utf16le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut utf16be = vec![0xFE, 0xFF];
        utf16be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(text.as_bytes());
        let variants = [
            ("", text.as_bytes().to_vec()),
            ("utf16le-", utf16le),
            ("utf16be-", utf16be),
            ("bom-", bom),
        ];
        let mut first: Option<Verdict> = None;
        for (prefix, bytes) in variants {
            let file = dir.path().join(format!("{prefix}{name}"));
            std::fs::write(&file, bytes).unwrap();
            let (daemon, validate) = (daemon_verdict(&file), validate_verdict(&file));
            assert_eq!(daemon, validate, "{prefix}{name}: daemon vs validate");
            // The encoding never changes the verdict (a text that is itself broken JSON
            // stays broken in every encoding).
            match &first {
                None => first = Some(daemon),
                Some(f) => assert_eq!(f, &daemon, "{prefix}{name}: vs UTF-8"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 60, "{checked} files checked");
}
