//! Conversion of what the emulator's generator makes — the same shapes Key Vault serves —
//! for every key kind, chain length and format.

use akv_sync_emulator::generator::{CertSpec, Format, KeyKind, generate, to_pem, to_pkcs12};
use akv_sync_material::convert;
use base64::Engine;

#[test]
fn every_generated_shape_converts_to_its_chain_in_order() {
    // Each kind is also the next one's issuer: P-521 and secp256k1 sign chains too.
    let kinds = [
        KeyKind::Rsa2048,
        KeyKind::EcP256,
        KeyKind::EcP384,
        KeyKind::EcP521,
        KeyKind::EcP256K,
    ];
    for (i, key) in kinds.into_iter().enumerate() {
        for chain_len in 1..=4u8 {
            let spec = CertSpec {
                key,
                issuer_key: kinds[(i + 1) % kinds.len()],
                chain_len,
                ..CertSpec::default()
            };
            let g = generate(&spec).unwrap();
            let pfx = base64::engine::general_purpose::STANDARD.encode(to_pkcs12(&g).unwrap());
            let pem = to_pem(&g);
            for (value, content_type) in [
                (pfx.as_str(), Format::Pkcs12.content_type()),
                (pem.as_str(), Format::Pem.content_type()),
            ] {
                let m = convert(value, content_type, g.not_before + 60)
                    .unwrap_or_else(|e| panic!("{key:?} chain {chain_len} {content_type}: {e}"));
                assert_eq!(
                    m.leaf, g.certs_der[0],
                    "{key:?} {chain_len} {content_type}: leaf"
                );
                assert_eq!(
                    m.chain,
                    g.certs_der[1..],
                    "{key:?} {chain_len} {content_type}: chain order"
                );
                assert_eq!(m.not_after, g.not_after);
                assert!(m.warnings.is_empty(), "{:?}", m.warnings);
            }
        }
    }
}
