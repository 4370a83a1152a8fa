//! `akv-sync once`: one pass over every observed certificate.
//!
//! What an operator sees: on a terminal, a progress bar on stderr with warnings and errors
//! printed above it as they happen (INFO lines only with `--verbose`); at the end, on stdout,
//! the counts and the certificates that failed, with why (`--list`: every certificate). Off a
//! terminal nothing is drawn and the log keeps `--log`'s level, so scripts and journald get
//! plain, stable lines. `--json` prints one document and nothing else on stdout.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use akv_sync_actors::{CheckOutcome, InstallReport, NoObserver, OnceResult, run_once};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::ports::ports;
use crate::cli::settings_file::{load_or_exit, log_parsed, refused};
use crate::log::{self, Console, LogArgs};
use crate::status::LogStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settings file.
    #[arg(long, env = "AKV_SYNC_SETTINGS")]
    pub settings: PathBuf,
    /// Tries per certificate before it counts as failed (with the initial-sync backoff between).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=25))]
    pub attempts: u32,
    /// On a terminal, show the log's INFO lines too (one or two per certificate); warnings
    /// and errors are always shown. Off a terminal the log is always at --log's level.
    #[arg(short, long)]
    pub verbose: bool,
    /// List every certificate with its outcome and version, not only the failed ones.
    #[arg(long, conflicts_with = "json")]
    pub list: bool,
    /// Print one JSON document (counts, and per certificate: id, outcome, version, error)
    /// and nothing else on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What became of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new version was written.
    Installed,
    /// The installed version was already current (permissions or links may have been repaired).
    Current,
    /// Every try failed, or its check ended without a result; the last good files stay.
    Failed,
    /// The settings refused it: never tried.
    Refused,
}

/// One certificate's line of the summary (and entry of `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `vault/name in store`, or for a refused entry its JSON path.
    pub id: String,
    pub outcome: Outcome,
    /// The version installed or found current.
    pub version: Option<String>,
    /// Why it failed or was refused.
    pub error: Option<String>,
}

/// The counts and rows of a pass; what `--json` prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub installed: usize,
    pub current: usize,
    /// Failed and refused.
    pub failed: usize,
    pub certificates: Vec<Row>,
}

impl Summary {
    /// `expected` are the ids of the certificates tried, in settings order; one without a
    /// result (its check panicked, which is logged) failed.
    pub fn new(
        expected: &[String],
        results: Vec<OnceResult>,
        refused: &[(String, String)],
    ) -> Self {
        let mut results: HashMap<String, OnceResult> =
            results.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut rows: Vec<Row> = Vec::with_capacity(expected.len() + refused.len());
        for id in expected {
            rows.push(match results.remove(id) {
                Some(r) => row(r),
                None => Row {
                    id: id.clone(),
                    outcome: Outcome::Failed,
                    version: None,
                    error: Some("its check ended without a result (see the log)".to_owned()),
                },
            });
        }
        rows.extend(refused.iter().map(|(id, why)| Row {
            id: id.clone(),
            outcome: Outcome::Refused,
            version: None,
            error: Some(format!("refused by the settings: {why}")),
        }));
        let count = |o: &[Outcome]| rows.iter().filter(|r| o.contains(&r.outcome)).count();
        Summary {
            installed: count(&[Outcome::Installed]),
            current: count(&[Outcome::Current]),
            failed: count(&[Outcome::Failed, Outcome::Refused]),
            certificates: rows,
        }
    }

    /// Every certificate installed or current.
    pub fn all_good(&self) -> bool {
        self.failed == 0
    }

    /// The text summary: the counts, then the failed certificates with why (`list`: every
    /// certificate with its outcome).
    pub fn render(&self, list: bool) -> String {
        let mut out = format!(
            "{} certificate(s): {} installed, {} already current, {} failed\n",
            self.certificates.len(),
            self.installed,
            self.current,
            self.failed
        );
        for r in &self.certificates {
            let failed = matches!(r.outcome, Outcome::Failed | Outcome::Refused);
            if !list && !failed {
                continue;
            }
            let label = match r.outcome {
                Outcome::Installed => "installed",
                Outcome::Current => "current",
                Outcome::Failed | Outcome::Refused => "FAILED",
            };
            let detail = match (&r.version, &r.error) {
                (_, Some(e)) => e.as_str(),
                (Some(v), None) => v.as_str(),
                (None, None) => "",
            };
            out.push_str(format!("{label:<9}  {}  {detail}", r.id).trim_end());
            out.push('\n');
        }
        out
    }
}

fn row(r: OnceResult) -> Row {
    let (outcome, version, error) = match r.result {
        Ok(CheckOutcome::Updated {
            version,
            report: InstallReport::Installed { .. },
        }) => (Outcome::Installed, Some(version), None),
        Ok(CheckOutcome::Updated { version, .. } | CheckOutcome::Current { version }) => {
            (Outcome::Current, Some(version), None)
        }
        Ok(CheckOutcome::Failed { error, .. })
        | Err(akv_sync_actors::CheckError { message: error, .. }) => {
            (Outcome::Failed, None, Some(error))
        }
    };
    Row {
        id: r.id,
        outcome,
        version,
        error,
    }
}

/// The progress bar's look: `[####----] 120/2000 certificates  00:14`.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{wide_bar} {pos}/{len} certificates  {elapsed_precise}")
        .expect("the template is valid")
}

/// Log lines printed above the bar, not through it: each line is written while the bar is
/// cleared, then the bar is drawn again. With a hidden bar this is plain stderr.
#[derive(Clone)]
struct AboveBar(ProgressBar);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AboveBar {
    type Writer = AboveBar;
    fn make_writer(&'a self) -> AboveBar {
        self.clone()
    }
}

impl Write for AboveBar {
    // The fmt layer writes each event with one `write_all` of the whole line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(&args.settings) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let settings = &loaded.parsed.settings;
    let total = settings.certificates.len() as u64;
    // A bar (and a quiet log) only for a person watching stderr.
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(bar_style())
    } else {
        ProgressBar::hidden()
    };
    let quiet = (interactive && !args.verbose).then_some(LevelFilter::WARN);
    log::init_with(
        &args.log,
        Console::new(AboveBar(bar.clone()), quiet),
        None,
        None,
    );
    log_parsed(&loaded);
    let refused = refused(&loaded.parsed);
    let settings = loaded.parsed.settings;
    crate::azure::net::warn_overrides();
    let expected: Vec<String> = settings
        .certificates
        .iter()
        .map(akv_sync_actors::certificate_id)
        .collect();
    if interactive {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let runtime = super::ports::runtime()?;
    let results = runtime.block_on(async {
        let ports = ports(&settings, Arc::new(LogStatus), Arc::new(NoObserver), None)?;
        let b = bar.clone();
        anyhow::Ok(run_once(&settings, ports, args.attempts, move |_| b.inc(1)).await)
    });
    bar.finish_and_clear();
    let summary = Summary::new(&expected, results?, &refused);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        stdout.write_all(b"\n")?;
    } else {
        stdout.write_all(summary.render(args.list).as_bytes())?;
    }
    stdout.flush()?;
    Ok(if summary.all_good() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use akv_sync_actors::{Cause, CheckError, InstallFailure};

    fn result(id: &str, result: Result<CheckOutcome, CheckError>) -> OnceResult {
        OnceResult {
            id: id.to_owned(),
            result,
        }
    }

    fn installed(id: &str, version: &str) -> OnceResult {
        result(
            id,
            Ok(CheckOutcome::Updated {
                version: version.to_owned(),
                report: InstallReport::Installed {
                    previous_version: None,
                },
            }),
        )
    }

    fn current(id: &str, version: &str) -> OnceResult {
        result(
            id,
            Ok(CheckOutcome::Current {
                version: version.to_owned(),
            }),
        )
    }

    fn failed(id: &str, why: &str) -> OnceResult {
        result(
            id,
            Err(CheckError {
                message: why.to_owned(),
                cause: Cause::Install(InstallFailure::Store),
            }),
        )
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Two installed, one current (a repair counts as current), one failed, one refused.
    fn mixed() -> Summary {
        Summary::new(
            &ids(&[
                "a/one in /s",
                "a/two in /s",
                "a/three in /s",
                "a/four in /s",
                "a/five in /s",
            ]),
            vec![
                installed("a/one in /s", "v1"),
                current("a/two in /s", "v2"),
                failed("a/three in /s", "secret not found (404)"),
                installed("a/four in /s", "v4"),
                result(
                    "a/five in /s",
                    Ok(CheckOutcome::Updated {
                        version: "v5".to_owned(),
                        report: InstallReport::Repaired,
                    }),
                ),
            ],
            &[(
                "secretsManagementSettings.observedCertificates[5]".to_owned(),
                "url: not https".to_owned(),
            )],
        )
    }

    #[test]
    fn the_summary_counts_installed_current_and_failed_with_refused_among_the_failed() {
        let s = mixed();
        assert_eq!((s.installed, s.current, s.failed), (2, 2, 2));
        assert!(!s.all_good());
        assert_eq!(
            s.render(false).lines().next(),
            Some("6 certificate(s): 2 installed, 2 already current, 2 failed")
        );
    }

    #[test]
    fn the_summary_lists_only_the_failed_certificates_with_why() {
        let text = mixed().render(false);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "FAILED     a/three in /s  secret not found (404)",
                "FAILED     secretsManagementSettings.observedCertificates[5]  refused by the settings: url: not https",
            ]
        );
    }

    #[test]
    fn list_shows_every_certificate_with_its_outcome_in_settings_order() {
        let text = mixed().render(true);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "installed  a/one in /s  v1",
                "current    a/two in /s  v2",
                "FAILED     a/three in /s  secret not found (404)",
                "installed  a/four in /s  v4",
                "current    a/five in /s  v5",
                "FAILED     secretsManagementSettings.observedCertificates[5]  refused by the settings: url: not https",
            ]
        );
    }

    #[test]
    fn an_all_good_pass_prints_the_counts_alone() {
        let s = Summary::new(
            &ids(&["a/one in /s", "a/two in /s"]),
            vec![installed("a/one in /s", "v1"), current("a/two in /s", "v2")],
            &[],
        );
        assert!(s.all_good());
        assert_eq!(
            s.render(false),
            "2 certificate(s): 1 installed, 1 already current, 0 failed\n"
        );
    }

    #[test]
    fn a_certificate_without_a_result_counts_as_failed_and_is_named() {
        let s = Summary::new(
            &ids(&["a/one in /s", "a/died in /s"]),
            vec![installed("a/one in /s", "v1")],
            &[],
        );
        assert_eq!(s.failed, 1);
        assert_eq!(s.certificates[1].id, "a/died in /s");
        assert_eq!(s.certificates[1].outcome, Outcome::Failed);
        assert!(s.render(false).contains("FAILED     a/died in /s  "));
    }

    #[test]
    fn the_json_document_has_every_certificate_with_outcome_version_and_error() {
        let v = serde_json::to_value(mixed()).unwrap();
        assert_eq!(v["installed"], 2);
        assert_eq!(v["current"], 2);
        assert_eq!(v["failed"], 2);
        let certs = v["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 6);
        assert_eq!(
            certs[0],
            serde_json::json!({ "id": "a/one in /s", "outcome": "installed", "version": "v1", "error": null })
        );
        assert_eq!(certs[2]["outcome"], "failed");
        assert_eq!(certs[2]["error"], "secret not found (404)");
        assert_eq!(certs[5]["outcome"], "refused");
    }

    #[test]
    fn the_bar_template_is_valid() {
        let _ = bar_style();
    }
}
