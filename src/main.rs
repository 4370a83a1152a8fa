use std::process::ExitCode;

use akv_sync::cli;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// One pass over every certificate, then the counts and what failed; exit 0 only if all are installed and current.
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
    // `generate` (packaging: man pages, completions) is parsed but documented nowhere: it is
    // added here and not to `Cli`, so the pages and completions it writes from `Cli` cannot
    // list it (clap_complete writes hidden subcommands into its scripts).
    let matches = Cli::command()
        .subcommand(cli::generate::Args::command())
        .get_matches();
    if let Some(("generate", m)) = matches.subcommand() {
        let args = cli::generate::Args::from_arg_matches(m).unwrap_or_else(|e| e.exit());
        return finish(cli::generate::run(args, Cli::command()));
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    finish(match cli.command {
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
    })
}

/// The exit code, or `akv-sync: error:` with the whole cause chain and 1.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
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
