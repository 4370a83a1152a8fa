//! PKCS#12 writing in today's form, for the `pfx` output (issue 18): what OpenSSL 3 and
//! Java 11+ write by default, and what .NET 6+, `keytool` and `openssl pkcs12` (without
//! `-legacy`) read.
//!
//! - Certificates in an `EncryptedData`, the key in a `pkcs8ShroudedKeyBag`, both under
//!   PBES2: PBKDF2-HMAC-SHA256 ([`ITERATIONS`] rounds, 16-byte salt) keying AES-256-CBC. The
//!   password goes to PBKDF2 as its UTF-8 bytes, as OpenSSL, Java and .NET do.
//! - An HMAC-SHA256 MAC over the `AuthenticatedSafe`, keyed by the RFC 7292 appendix B KDF
//!   over SHA-256 with the password as a BMPString with its terminator (`00 00` for the
//!   empty password: what OpenSSL's `-passout pass:` and Java write).
//! - Key and leaf carry the same `localKeyId` (SHA-1 of the leaf, as OpenSSL does) and the
//!   friendly name, which Java shows as the alias; the issuers carry no attribute, so Java
//!   reads them as the key's chain rather than as trusted entries.
//!
//! Salts and IVs are not drawn at random: they are HMAC-SHA256 outputs keyed by the private
//! key over everything the file depends on (password, friendly name, certificates). The same
//! inputs give the same bytes, so the store's rule "same bytes on disk → write nothing" keeps
//! working (a file watcher of a .NET or Java service does not fire on every restart), and
//! any change — a new version, a new password, another name — gives a new file. To anyone
//! without the key they are as unpredictable as random ones; what the determinism reveals is
//! only that two files with the same key, certificates and password are equal.

use ring::{digest, hmac, pbkdf2};
use zeroize::Zeroizing;

use super::{
    OID_DATA, OID_LOCAL_KEY_ID, OID_PBES2, cert_bag, content_info, encrypted_content_info, kdf,
    shrouded_key_bag,
};
use crate::der;

/// PBKDF2 and MAC iterations: Java's defaults for new PKCS#12 stores (OpenSSL's are 2048).
pub(crate) const ITERATIONS: u32 = 10_000;
/// `INTEGER 10000`
const ITERATIONS_DER: [u8; 4] = [der::INTEGER, 2, 0x27, 0x10];

const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
const BMP_STRING: u8 = 0x1e;

/// The password as a BMPString's content with its terminator (the MAC's input).
fn bmp(s: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_be_bytes)
            .collect(),
    )
}

/// Salts and IVs, derived as the module documentation says.
struct Nonces(hmac::Key);

impl Nonces {
    fn new(password: &str, friendly_name: &str, certs: &[&[u8]], key_pkcs8: &[u8]) -> Nonces {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, key_pkcs8);
        let mut ctx = hmac::Context::with_key(&outer);
        ctx.update(b"akv-sync pfx nonces v1");
        let parts = [password.as_bytes(), friendly_name.as_bytes()];
        for part in parts.iter().chain(certs) {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let seed = Zeroizing::new(ctx.sign().as_ref().to_vec());
        Nonces(hmac::Key::new(hmac::HMAC_SHA256, &seed))
    }

    fn get<const N: usize>(&self, label: &str) -> [u8; N] {
        let tag = hmac::sign(&self.0, label.as_bytes());
        tag.as_ref()[..N]
            .try_into()
            .expect("HMAC-SHA256 gives 32 bytes")
    }
}

/// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) encryption of `plain`. Returns the DER
/// AlgorithmIdentifier and the ciphertext.
fn pbes2_encrypt(
    password: &str,
    salt: &[u8; 16],
    iv: &[u8; 16],
    plain: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        password.as_bytes(),
        &mut key[..],
    );
    let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key[..], iv)
        .expect("AES-256 takes a 32-byte key and a 16-byte IV")
        .encrypt_padded_vec::<Pkcs7>(plain);
    let prf = der::tlv(
        der::SEQUENCE,
        &[&der::tlv(der::OID, &[OID_HMAC_SHA256]), &[der::NULL, 0]],
    );
    let kdf_params = der::tlv(
        der::SEQUENCE,
        &[&der::tlv(der::OCTET_STRING, &[salt]), &ITERATIONS_DER, &prf],
    );
    let kdf_alg = der::tlv(
        der::SEQUENCE,
        &[&der::tlv(der::OID, &[OID_PBKDF2]), &kdf_params],
    );
    let enc_alg = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[OID_AES256_CBC]),
            &der::tlv(der::OCTET_STRING, &[iv]),
        ],
    );
    let params = der::tlv(der::SEQUENCE, &[&kdf_alg, &enc_alg]);
    let alg = der::tlv(der::SEQUENCE, &[&der::tlv(der::OID, &[OID_PBES2]), &params]);
    (alg.to_vec(), ct)
}

/// `SET { SEQUENCE { friendlyName, SET { BMPString } }, SEQUENCE { localKeyId, SET { OCTET STRING } } }`
fn attributes(friendly_name: &str, local_key_id: &[u8]) -> Zeroizing<Vec<u8>> {
    let name: Vec<u8> = friendly_name
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    der::tlv(
        der::SET,
        &[
            &der::tlv(
                der::SEQUENCE,
                &[
                    &der::tlv(der::OID, &[OID_FRIENDLY_NAME]),
                    &der::tlv(der::SET, &[&der::tlv(BMP_STRING, &[&name])]),
                ],
            ),
            &der::tlv(
                der::SEQUENCE,
                &[
                    &der::tlv(der::OID, &[OID_LOCAL_KEY_ID]),
                    &der::tlv(der::SET, &[&der::tlv(der::OCTET_STRING, &[local_key_id])]),
                ],
            ),
        ],
    )
}

/// A PFX holding `key_pkcs8`, the leaf `certs_der[0]` and its issuers `certs_der[1..]`
/// under `password` (may be empty), key and leaf named `friendly_name`.
pub(crate) fn write_pfx(
    certs_der: &[&[u8]],
    key_pkcs8: &[u8],
    password: &str,
    friendly_name: &str,
) -> Zeroizing<Vec<u8>> {
    let nonces = Nonces::new(password, friendly_name, certs_der, key_pkcs8);
    let local_key_id = {
        use sha1::Digest as _;
        sha1::Sha1::digest(certs_der.first().copied().unwrap_or_default())
    };
    let attrs = attributes(friendly_name, &local_key_id);

    // The certificates, encrypted together; only the leaf carries the attributes.
    let cert_bags: Vec<_> = certs_der
        .iter()
        .enumerate()
        .map(|(i, cert)| cert_bag(cert, (i == 0).then_some(&attrs[..])))
        .collect();
    let parts: Vec<&[u8]> = cert_bags.iter().map(|b| &b[..]).collect();
    let cert_safe = der::tlv(der::SEQUENCE, &parts);
    let (alg, ct) = pbes2_encrypt(
        password,
        &nonces.get("certificates salt"),
        &nonces.get("certificates iv"),
        &cert_safe,
    );
    let certs_ci = encrypted_content_info(&alg, &ct);

    // The key: plain data holding one shrouded key bag.
    let (alg, ct) = pbes2_encrypt(
        password,
        &nonces.get("key salt"),
        &nonces.get("key iv"),
        key_pkcs8,
    );
    let key_safe = der::tlv(
        der::SEQUENCE,
        &[&shrouded_key_bag(&alg, &ct, Some(&attrs[..]))],
    );
    let key_ci = content_info(OID_DATA, &der::tlv(der::OCTET_STRING, &[&key_safe]));

    let auth_safe = der::tlv(der::SEQUENCE, &[&certs_ci, &key_ci]);
    let mac_salt: [u8; 32] = nonces.get("mac salt");
    let mac_key = kdf(
        &digest::SHA256,
        &bmp(password),
        &mac_salt,
        3,
        u64::from(ITERATIONS),
        32,
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &auth_safe);
    let digest_info = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(
                der::SEQUENCE,
                &[&der::tlv(der::OID, &[OID_SHA256]), &[der::NULL, 0]],
            ),
            &der::tlv(der::OCTET_STRING, &[tag.as_ref()]),
        ],
    );
    let mac_data = der::tlv(
        der::SEQUENCE,
        &[
            &digest_info,
            &der::tlv(der::OCTET_STRING, &[&mac_salt]),
            &ITERATIONS_DER,
        ],
    );
    let outer = content_info(OID_DATA, &der::tlv(der::OCTET_STRING, &[&auth_safe]));
    der::tlv(der::SEQUENCE, &[&[der::INTEGER, 1, 3], &outer, &mac_data])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf, intermediate and root (each signed by the next) and the leaf's key.
    fn chain() -> (Vec<Vec<u8>>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.use_authority_key_identifier_extension = true;
            p
        };
        let root =
            CertifiedIssuer::self_signed(ca("root"), KeyPair::generate_for(alg).unwrap()).unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca("intermediate"),
            KeyPair::generate_for(alg).unwrap(),
            &root,
        )
        .unwrap();
        let leaf_key = KeyPair::generate_for(alg).unwrap();
        let mut leaf = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        let leaf = leaf.signed_by(&leaf_key, &intermediate).unwrap();
        (
            vec![
                leaf.der().to_vec(),
                intermediate.der().to_vec(),
                root.der().to_vec(),
            ],
            leaf_key.serialize_der(),
        )
    }

    /// p12-keystore, an independent reader, opens it with the password (verifying the
    /// SHA-256 MAC and decrypting both AES parts) and finds the key and both certificates
    /// under the friendly name.
    #[test]
    fn the_written_pfx_is_read_back_under_its_password_with_key_chain_and_alias() {
        let (certs, key) = chain();
        let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
        for password in ["", "s3cret pässword"] {
            let pfx = write_pfx(&refs, &key, password, "web");
            let store =
                p12_keystore::KeyStore::from_pkcs12(&pfx, password, Default::default()).unwrap();
            let (alias, chain) = store.private_key_chain().expect("a key entry");
            assert_eq!(alias, "web");
            assert_eq!(chain.key().as_der(), key.as_slice());
            let got: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            assert_eq!(got, refs);
            assert!(
                p12_keystore::KeyStore::from_pkcs12(&pfx, "wrong", Default::default()).is_err()
            );
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_a_new_password_or_name_new_ones() {
        let (certs, key) = chain();
        let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
        let a = write_pfx(&refs, &key, "pw", "web");
        assert_eq!(a, write_pfx(&refs, &key, "pw", "web"));
        assert_ne!(a, write_pfx(&refs, &key, "pw2", "web"));
        assert_ne!(a, write_pfx(&refs, &key, "pw", "web2"));
    }
}
