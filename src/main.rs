use std::process::ExitCode;

use akv_sync::cmd;
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
    Run(cmd::run::Args),
    /// One pass over every certificate; exit 0 only if all are installed and current.
    Once(cmd::once::Args),
    /// A local Key Vault + identity emulator with sample certificates, and the agent syncing them.
    Demo(cmd::demo::Args),
    /// Check a settings file and print the plan (one line per certificate), or every error.
    Validate(cmd::validate::Args),
    /// Convert a secret value (PKCS#12 or PEM) to the full-chain PEM the store would hold (or, with --to, the pfx or certDer output).
    Convert(cmd::convert::Args),
    /// Show what is installed for each observed certificate: version, expiry, links.
    Status(cmd::status::Args),
    /// VM-agent handler commands (install, enable, disable, uninstall, update).
    Handler(cmd::handler::Args),
    /// Run a local Key Vault + IMDS + Arc emulator (for tests and the demo).
    Emulator(cmd::emulator::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Once(args) => cmd::once::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Handler(args) => cmd::handler::run(args),
        Command::Emulator(args) => cmd::emulator::run(args),
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
