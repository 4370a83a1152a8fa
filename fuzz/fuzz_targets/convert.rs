//! Fuzzes `material::convert`, the parser of everything Key Vault returns.
//!
//! The first byte picks the content type (even: PKCS#12, odd: PEM); the rest is the value.
//! For PKCS#12 the raw bytes are base64-encoded first, so the fuzzer explores the DER
//! rather than the base64 alphabet. It must never panic, and a refusal's message must never
//! carry a run of the value's base64 text.
#![no_main]

use akv_sync_material as material;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (value, content_type) = if selector % 2 == 0 {
        (
            base64::engine::general_purpose::STANDARD.encode(rest),
            "application/x-pkcs12",
        )
    } else {
        (
            String::from_utf8_lossy(rest).into_owned(),
            "application/x-pem-file",
        )
    };
    match material::convert(&value, content_type, 1_700_000_000) {
        Ok(m) => {
            // Whatever converts renders, and the key is last.
            let pem = m.full_chain_pem();
            assert!(pem.ends_with(b"-----END PRIVATE KEY-----\n"));
        }
        Err(e) => {
            // No 32-character run of base64 text from the value (a key or certificate body)
            // may appear in the message. (Not "the message does not contain the value": the
            // fuzzer soon learns to feed the messages' own words back as the value.)
            let msg = format!("{e} {e:?}");
            let b64 = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=');
            for window in value.as_bytes().windows(32) {
                if window.iter().all(b64) {
                    let w = std::str::from_utf8(window).expect("ASCII");
                    assert!(!msg.contains(w), "message carries value text");
                }
            }
        }
    }
});
