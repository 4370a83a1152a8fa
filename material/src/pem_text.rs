//! PEM secret values: any order of blocks, CRLF or LF, stray indentation and blank lines.

use zeroize::Zeroizing;

use crate::model::{MaterialError, MaterialWarning, RawKey};

/// What a PEM value holds, before any ordering.
pub(crate) struct Blocks {
    pub keys: Vec<RawKey>,
    pub certs: Vec<Vec<u8>>,
}

/// Reads every PEM block of `value`.
pub(crate) fn read(
    value: &str,
    warnings: &mut Vec<MaterialWarning>,
) -> Result<Blocks, MaterialError> {
    // Legacy OpenSSL encryption ("Proc-Type: 4,ENCRYPTED" headers) needs a password too.
    if value.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(MaterialError::EncryptedPemKey);
    }
    // Normalise: trim every line (CRLF, indentation, trailing blanks), drop blank lines.
    let mut text = Zeroizing::new(String::with_capacity(value.len()));
    for line in value.lines() {
        let line = line.trim();
        if !line.is_empty() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let blocks = ::pem::parse_many(text.as_bytes()).map_err(|e| match e {
        // The base64 error would name the offending byte: keep it out of the message.
        ::pem::PemError::InvalidData(_) => MaterialError::BadBase64 {
            location: "a PEM block",
        },
        ::pem::PemError::MismatchedTags(..) => MaterialError::MalformedPem {
            reason: "a BEGIN line and its END line name different types",
        },
        ::pem::PemError::MissingEndTag => MaterialError::MalformedPem {
            reason: "a block has no END line (truncated?)",
        },
        _ => MaterialError::MalformedPem {
            reason: "a block is not well framed",
        },
    })?;
    if blocks.is_empty() {
        return Err(MaterialError::NotPem);
    }
    let mut out = Blocks {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for block in blocks {
        let label = block.tag().to_owned();
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => out.certs.push(block.into_contents()),
            "PRIVATE KEY" => out
                .keys
                .push(RawKey::Pkcs8(Zeroizing::new(block.into_contents()))),
            "RSA PRIVATE KEY" => out
                .keys
                .push(RawKey::Pkcs1(Zeroizing::new(block.into_contents()))),
            "EC PRIVATE KEY" => out
                .keys
                .push(RawKey::Sec1(Zeroizing::new(block.into_contents()))),
            "ENCRYPTED PRIVATE KEY" => return Err(MaterialError::EncryptedPemKey),
            // `openssl ecparam -genkey` writes the curve beside the key; it adds nothing.
            "EC PARAMETERS" => {}
            _ => {
                // Zeroize whatever it was: it might have been key material under an odd label.
                drop(Zeroizing::new(block.into_contents()));
                warnings.push(MaterialWarning::IgnoredPemBlock {
                    label: label.chars().filter(|c| !c.is_control()).take(64).collect(),
                });
            }
        }
    }
    Ok(out)
}
