//! `akv-sync convert`: shows what a secret value becomes on disk.
//!
//! Writes the full-chain PEM (leaf, issuers, private key) to stdout and warnings to stderr;
//! `--to pfx` writes the PKCS#12 the `pfx` output holds instead, `--to der` the leaf as DER
//! (the `certDer` output). A refused value prints the reason to stderr and exits 2; nothing
//! goes to stdout.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use zeroize::Zeroizing;

use akv_sync_material as material;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The secret's contentType: application/x-pkcs12 or application/x-pem-file.
    #[arg(long, value_name = "TYPE")]
    pub content_type: String,
    /// File holding the secret value (base64 PFX or PEM text); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Output encoding: pem (full chain and key, the store's file), pfx (PKCS#12 as the
    /// `pfx` output writes it), der (the leaf, as the `certDer` output writes it).
    #[arg(long, value_enum, default_value_t = To::Pem)]
    pub to: To,
    /// With --to pfx: file holding the password (checked as `pfxPasswordFile` is); without
    /// it, the empty password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// With --to pfx: the friendly name (alias) of the key and leaf.
    #[arg(long, value_name = "NAME", default_value = "certificate")]
    pub friendly_name: String,
}

/// What `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    Pem,
    Pfx,
    Der,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if args.to != To::Pem && std::io::stdout().is_terminal() {
        eprintln!(
            "akv-sync: refused: --to pfx and --to der write binary data; redirect stdout to a file"
        );
        return Ok(ExitCode::from(2));
    }
    if args.password_file.is_some() && args.to != To::Pfx {
        eprintln!("akv-sync: refused: --password-file applies to --to pfx only");
        return Ok(ExitCode::from(2));
    }
    let password = match &args.password_file {
        Some(path) => match crate::store::output::read_password_file(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("akv-sync: refused: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => Zeroizing::new(String::new()),
    };
    let mut raw = Zeroizing::new(Vec::new());
    if args.input.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(material::MAX_VALUE_BYTES as u64 * 4)
            .read_to_end(&mut raw)
            .context("reading the secret value from stdin")?;
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("opening {}", args.input.display()))?;
        file.take(material::MAX_VALUE_BYTES as u64 * 4)
            .read_to_end(&mut raw)
            .with_context(|| format!("reading {}", args.input.display()))?;
    }
    let Ok(value) = std::str::from_utf8(&raw) else {
        eprintln!(
            "akv-sync: refused: the secret value is not UTF-8 text (a Key Vault secret value is base64 or PEM text)"
        );
        return Ok(ExitCode::from(2));
    };
    // A file saved by an editor or `az ... -o tsv` ends with a newline the vault did not hold.
    let value = value.trim_end_matches(['\n', '\r']);
    let now = crate::clock::now_unix();
    match material::convert(value, &args.content_type, now) {
        Ok(m) => {
            for w in &m.warnings {
                eprintln!("akv-sync: warning: {w}");
            }
            eprintln!(
                "akv-sync: {}: thumbprint {}, {} issuer certificate(s)",
                m.subject,
                m.thumbprint_hex(),
                m.chain.len()
            );
            let bytes = match args.to {
                To::Pem => m.full_chain_pem(),
                To::Pfx => m.pfx(&password, &args.friendly_name),
                To::Der => Zeroizing::new(m.cert_der()),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("writing the result to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("akv-sync: refused: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
