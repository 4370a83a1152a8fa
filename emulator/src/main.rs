//! `akv-sync-emulator`: the emulator on its own (the same as `akv-sync emulator`).

use std::process::ExitCode;

use clap::Parser;

/// A local Key Vault + IMDS + Arc emulator over real TLS, for tests and the demo.
#[derive(Debug, Parser)]
#[command(name = "akv-sync-emulator", version, about)]
struct Cli {
    #[command(flatten)]
    args: akv_sync_emulator::cli::Args,
}

fn main() -> ExitCode {
    match akv_sync_emulator::cli::run(Cli::parse().args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("akv-sync-emulator: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
