use std::process::ExitCode;

use akv_sync::cli;
use clap::{Parser, Subcommand};

/// Keeps the certificates a Linux host needs in step with Azure Key Vault.
///
/// A drop-in replacement for the KeyVaultForLinux VM extension: same settings, same files
/// in the same places, same states reported.
#[derive(Debug, Parser)]
#[command(name = "akv-sync", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: keep every observed certificate in step with Key Vault (the daemon).
    Run(cli::run::Args),
    /// One pass over every certificate; exit 0 only if all are installed and current.
    Once(cli::once::Args),
    /// A local Key Vault + identity emulator with sample certificates, and the agent syncing them.
    #[cfg(feature = "emulator")]
    Demo(cli::demo::Args),
    /// Check a settings file and print the plan (one line per certificate), or every error.
    Validate(cli::validate::Args),
    /// Convert a secret value (PKCS#12 or PEM) to the full-chain PEM the store would hold (or, with --to, the pfx or certDer output).
    Convert(cli::convert::Args),
    /// Show what is installed for each observed certificate: version, expiry, links.
    Status(cli::status::Args),
    /// VM-agent handler commands (install, enable, disable, uninstall, update), and `sandbox`.
    Handler(cli::handler::Args),
    /// Run a local Key Vault + IMDS + Arc emulator (for tests and the demo).
    #[cfg(feature = "emulator")]
    Emulator(akv_sync_emulator::cli::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Once(args) => cli::once::run(args),
        #[cfg(feature = "emulator")]
        Command::Demo(args) => cli::demo::run(args),
        Command::Validate(args) => cli::validate::run(args),
        Command::Convert(args) => cli::convert::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Handler(args) => cli::handler::run(args),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => akv_sync_emulator::cli::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("akv-sync: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
