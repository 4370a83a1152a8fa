//! `akv-sync convert`: shows what a secret value becomes on disk.
//!
//! Writes the full-chain PEM (leaf, issuers, private key) to stdout and warnings to stderr.
//! A refused value prints the reason to stderr and exits 2; nothing goes to stdout.

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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
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
            let mut out = std::io::stdout().lock();
            out.write_all(&m.full_chain_pem())
                .and_then(|()| out.flush())
                .context("writing the PEM to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("akv-sync: refused: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
