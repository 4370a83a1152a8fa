//! `akv-sync once`: one pass over every observed certificate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use akv_sync_actors::{CheckOutcome, InstallReport, NoObserver, run_once};

use crate::cli::ports::ports;
use crate::cli::settings_file::{load_or_exit, log_parsed, refused};
use crate::log::{self, LogArgs};
use crate::status::LogStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settings file.
    #[arg(long, env = "AKV_SYNC_SETTINGS")]
    pub settings: PathBuf,
    /// Tries per certificate before it counts as failed (with the initial-sync backoff between).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=25))]
    pub attempts: u32,
    #[command(flatten)]
    pub log: LogArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load_or_exit(&args.settings) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    log::init(&args.log, None, None);
    log_parsed(&loaded);
    let refused = refused(&loaded.parsed);
    let parsed = loaded.parsed;
    crate::azure::net::warn_overrides();
    let settings = parsed.settings;
    let total = settings.certificates.len() as u64;
    let bar = if std::io::stderr().is_terminal() && total > 1 {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let runtime = super::ports::runtime()?;
    let results = runtime.block_on(async {
        let ports = ports(&settings, Arc::new(LogStatus), Arc::new(NoObserver), None)?;
        let b = bar.clone();
        anyhow::Ok(run_once(&settings, ports, args.attempts, move |_| b.inc(1)).await)
    })?;
    bar.finish_and_clear();
    let mut failed = 0;
    for r in &results {
        match &r.result {
            Ok(CheckOutcome::Updated {
                version,
                report: InstallReport::Installed { .. },
            }) => {
                println!("installed  {}  {version}", r.id)
            }
            Ok(CheckOutcome::Updated { version, .. }) | Ok(CheckOutcome::Current { version }) => {
                println!("current    {}  {version}", r.id)
            }
            Ok(CheckOutcome::Failed { error, .. })
            | Err(akv_sync_actors::CheckError { message: error, .. }) => {
                failed += 1;
                println!("FAILED     {}  {error}", r.id)
            }
        }
    }
    // A certificate whose check died (panicked) has no result: it failed.
    failed += (total as usize).saturating_sub(results.len());
    // Refused by the settings: never tried.
    for (id, why) in &refused {
        println!("FAILED     {id}  refused by the settings: {why}");
    }
    let total = total as usize + refused.len();
    failed += refused.len();
    println!(
        "{} of {} certificate(s) installed and current",
        total - failed,
        total
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
