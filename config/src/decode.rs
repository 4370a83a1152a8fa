//! Bytes → settings text: UTF-8 (a byte-order mark is left for the parser, which warns about
//! it), or UTF-16 with a byte-order mark (PowerShell 5's `Out-File`), read with a warning.
//! Pure, like the rest of the crate: the commands read the file, this decides what it says.

use crate::error::{ConfigError, ErrorKind, Warning};
use crate::json_path::ROOT_PATH;

/// The settings text in `bytes`, and a warning when it was not UTF-8.
pub fn decode(bytes: Vec<u8>) -> Result<(String, Vec<Warning>), ConfigError> {
    let utf16 = |units: Vec<u16>| {
        let text = String::from_utf16(&units).map_err(|_| ConfigError {
            kind: ErrorKind::NotText,
            path: ROOT_PATH.into(),
            message: "the file starts like UTF-16 but is not valid UTF-16 text; save it as UTF-8"
                .into(),
        })?;
        let warning = Warning {
            path: ROOT_PATH.into(),
            message: "the file is UTF-16 (as PowerShell 5's Out-File writes it); it was read anyway, but the extension expects UTF-8: save it with -Encoding utf8".into(),
        };
        Ok((text, vec![warning]))
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(
            rest.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        [0xFE, 0xFF, rest @ ..] => utf16(
            rest.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => String::from_utf8(bytes)
            .map(|t| (t, Vec::new()))
            .map_err(|e| ConfigError {
                kind: ErrorKind::NotText,
                path: ROOT_PATH.into(),
                message: format!(
                    "not UTF-8 text (invalid byte at offset {}); expected a UTF-8 JSON file",
                    e.utf8_error().valid_up_to()
                ),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_with_either_byte_order_is_read_with_a_warning() {
        let text = r#"{"a": "é"}"#;
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        for bytes in [le, be] {
            let (t, w) = decode(bytes).unwrap();
            assert_eq!(t, text);
            assert_eq!(w.len(), 1);
        }
    }

    #[test]
    fn utf8_passes_unchanged_and_other_bytes_are_not_text() {
        assert_eq!(decode(b"{}".to_vec()).unwrap(), ("{}".into(), vec![]));
        assert_eq!(
            decode(vec![b'{', 0xC3, b'}']).unwrap_err().kind,
            ErrorKind::NotText
        );
    }
}
