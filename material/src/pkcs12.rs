//! PKCS#12 (PFX) reading.
//!
//! The bags are decoded by `p12-keystore`'s `Pkcs12Archive`, which keeps every key and
//! certificate bag as found (no linking, no filtering: ordering is ours to do) and decrypts
//! PBES1 3DES and RC2-40 (its default `pbes1` feature: what Key Vault, Windows and
//! `openssl -legacy` write) and PBES2 PBKDF2/AES-256 (OpenSSL 3's default).
//!
//! Key Vault PFX files have no password. There are two ways to have none, and tools differ:
//! an *empty* password (the BMPString terminator `00 00`, what OpenSSL `-passout pass:` and
//! the crate use) and an *absent* one (zero bytes, what some Windows/.NET exports use). The
//! crate only knows the empty one, so when its MAC check fails we check the MAC ourselves
//! with the absent password (RFC 7292 appendix B KDF over `ring::digest` + `ring::hmac`).
//! When that verifies, [`read_absent`] walks the bags itself and decrypts PBES1 (3DES, RC2-40,
//! RC2-128) with the absent password through the RustCrypto `des`/`rc2`/`cbc` crates (the same
//! ones p12-keystore uses). The real Key Vault PFX in `conformance/recorded/` is of this kind.
//! For PBES2 bags both passwords are the same zero-length string to PBKDF2, so that case goes
//! back to the crate with the (already verified) MAC removed.

use p12_keystore::error::Error as P12Error;
use ring::{digest, hmac};
use zeroize::Zeroizing;

use crate::der::{self, DerFault};

pub(crate) mod modern;

/// Highest MAC iteration count we spend time on (Key Vault uses 2000, OpenSSL 2048).
pub(crate) const MAX_MAC_ITERATIONS: u64 = 200_000;

/// What a PFX holds, before any ordering.
pub(crate) struct Bags {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub certs: Vec<Vec<u8>>,
}

/// Why a PFX could not be read.
#[derive(Debug)]
pub(crate) enum Pkcs12Fault {
    Truncated,
    Malformed(String),
    PasswordProtected,
}

/// Decodes a PFX (DER) with no password.
pub(crate) fn read(pfx: &[u8]) -> Result<Bags, Pkcs12Fault> {
    der::check_complete_sequence(pfx).map_err(|f| match f {
        DerFault::Truncated => Pkcs12Fault::Truncated,
        DerFault::Malformed => Pkcs12Fault::Malformed("not a DER SEQUENCE".into()),
    })?;
    let parts = split_pfx(pfx).map_err(|f| match f {
        DerFault::Truncated => Pkcs12Fault::Truncated,
        DerFault::Malformed => Pkcs12Fault::Malformed("not a PFX structure".into()),
    })?;
    if let Some(mac) = parts
        .mac
        .as_ref()
        .filter(|m| m.iterations > MAX_MAC_ITERATIONS)
    {
        return Err(Pkcs12Fault::Malformed(format!(
            "MAC iteration count {} is over the limit of {MAX_MAC_ITERATIONS}",
            mac.iterations
        )));
    }
    // Key Vault's PFX files have the absent password: try it first (one key derivation to
    // check the MAC), so that the common case does not first pay for a failed attempt with
    // the empty password.
    let absent = parts
        .mac
        .as_ref()
        .is_some_and(|mac| mac_verifies(mac, parts.auth_safe_content, &[]));
    let empty = (!absent).then(|| p12_keystore::Pkcs12Archive::from_pkcs12(pfx, ""));
    match empty {
        Some(Ok(archive)) => Ok(bags(archive)),
        Some(Err(P12Error::MacError(_))) => Err(Pkcs12Fault::PasswordProtected),
        Some(Err(e)) => Err(classify(e)),
        None => {
            // Absent password (the MAC verified above). PBES1 and plain bags: our reader.
            match read_absent(parts.auth_safe_content) {
                Ok(bags) => Ok(bags),
                Err(AbsentFault::Pbes2) => {
                    // PBES2 bags: to PBKDF2 an absent and an empty password are the same
                    // zero-length string, so the crate reads them once the MAC is gone.
                    let stripped = der::tlv(der::SEQUENCE, &[parts.version, parts.auth_safe]);
                    p12_keystore::Pkcs12Archive::from_pkcs12(&stripped, "")
                        .map(bags)
                        .map_err(classify)
                }
                Err(AbsentFault::Der(DerFault::Truncated)) => Err(Pkcs12Fault::Truncated),
                Err(AbsentFault::Der(DerFault::Malformed)) => {
                    Err(Pkcs12Fault::Malformed("not a PFX structure".into()))
                }
                Err(AbsentFault::Other(reason)) => Err(Pkcs12Fault::Malformed(reason.into())),
            }
        }
    }
}

fn bags(archive: p12_keystore::Pkcs12Archive) -> Bags {
    Bags {
        keys: archive
            .keys
            .into_iter()
            .map(|k| Zeroizing::new(k.key.as_der().to_vec()))
            .collect(),
        certs: archive
            .certs
            .into_iter()
            .map(|c| c.cert.as_der().to_vec())
            .collect(),
    }
}

fn classify(e: P12Error) -> Pkcs12Fault {
    match e {
        // Without a MAC, a wrong password shows up as bad padding after decryption.
        P12Error::UnpadError | P12Error::Pkcs5Error(_) => Pkcs12Fault::PasswordProtected,
        P12Error::UnsupportedEncryptionScheme => {
            Pkcs12Fault::Malformed("unsupported encryption scheme".into())
        }
        P12Error::UnsupportedMacAlgorithm => {
            Pkcs12Fault::Malformed("unsupported MAC algorithm".into())
        }
        P12Error::InvalidParameters => {
            Pkcs12Fault::Malformed("invalid or excessive encryption parameters".into())
        }
        P12Error::InvalidPrivateKey => Pkcs12Fault::Malformed("a key bag is not PKCS#8".into()),
        // The remaining errors describe structure (tags, positions), never content.
        other => Pkcs12Fault::Malformed(other.to_string()),
    }
}

struct MacData<'a> {
    digest: &'static digest::Algorithm,
    mac: &'a [u8],
    salt: &'a [u8],
    iterations: u64,
}

struct PfxParts<'a> {
    version: &'a [u8],
    auth_safe: &'a [u8],
    /// The content octets the MAC covers (the `data` OCTET STRING's value).
    auth_safe_content: &'a [u8],
    mac: Option<MacData<'a>>,
}

const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

fn split_pfx(pfx: &[u8]) -> Result<PfxParts<'_>, DerFault> {
    let (outer, _) = der::expect(pfx, der::SEQUENCE)?;
    let (version, rest) = der::expect(outer.value, der::INTEGER)?;
    let (auth_safe, rest) = der::expect(rest, der::SEQUENCE)?;
    let (ct, content) = der::expect(auth_safe.value, der::OID)?;
    let auth_safe_content = if ct.value == OID_DATA {
        let (explicit, _) = der::expect(content, der::CONTEXT_0)?;
        let (octets, _) = der::expect(explicit.value, der::OCTET_STRING)?;
        octets.value
    } else {
        &[]
    };
    let mac = if rest.is_empty() {
        None
    } else {
        let (mac_data, _) = der::expect(rest, der::SEQUENCE)?;
        let (digest_info, rest) = der::expect(mac_data.value, der::SEQUENCE)?;
        let (salt, rest) = der::expect(rest, der::OCTET_STRING)?;
        let iterations = if rest.is_empty() {
            1
        } else {
            let (it, _) = der::expect(rest, der::INTEGER)?;
            if it.value.len() > 8 || it.value.first().is_some_and(|b| b & 0x80 != 0) {
                u64::MAX
            } else {
                it.value.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
            }
        };
        let (alg, rest) = der::expect(digest_info.value, der::SEQUENCE)?;
        let (mac, _) = der::expect(rest, der::OCTET_STRING)?;
        let (oid, _) = der::expect(alg.value, der::OID)?;
        let digest = match oid.value {
            OID_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            OID_SHA256 => &digest::SHA256,
            OID_SHA384 => &digest::SHA384,
            OID_SHA512 => &digest::SHA512,
            _ => {
                return Ok(PfxParts {
                    version: version.raw,
                    auth_safe: auth_safe.raw,
                    auth_safe_content,
                    mac: None,
                });
            }
        };
        Some(MacData {
            digest,
            mac: mac.value,
            salt: salt.value,
            iterations,
        })
    };
    Ok(PfxParts {
        version: version.raw,
        auth_safe: auth_safe.raw,
        auth_safe_content,
        mac,
    })
}

fn mac_verifies(mac: &MacData<'_>, content: &[u8], password_bmp: &[u8]) -> bool {
    let hmac_alg = match mac.digest.output_len() {
        20 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        32 => hmac::HMAC_SHA256,
        48 => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let key_bytes = kdf(
        mac.digest,
        password_bmp,
        mac.salt,
        3,
        mac.iterations.max(1),
        mac.digest.output_len(),
    );
    let key = hmac::Key::new(hmac_alg, &key_bytes);
    hmac::verify(&key, content, mac.mac).is_ok()
}

/// RFC 7292 appendix B.2: derives `out_len` bytes of purpose `id` (1 key, 2 IV, 3 MAC).
fn kdf(
    alg: &'static digest::Algorithm,
    password_bmp: &[u8],
    salt: &[u8],
    id: u8,
    iterations: u64,
    out_len: usize,
) -> Zeroizing<Vec<u8>> {
    let v = alg.block_len();
    let u = alg.output_len();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        (0..len).map(|i| src[i % src.len()]).collect()
    };
    let diversifier = vec![id; v];
    let mut i_block = Zeroizing::new([fill(salt), fill(password_bmp)].concat());
    let mut out = Zeroizing::new(Vec::with_capacity(out_len));
    loop {
        let mut ctx = digest::Context::new(alg);
        ctx.update(&diversifier);
        ctx.update(&i_block);
        let first = ctx.finish();
        let mut a = first.as_ref().to_vec();
        iterate(alg, &mut a, iterations);
        let a = a.as_slice();
        let take = (out_len - out.len()).min(u);
        out.extend_from_slice(&a[..take]);
        if out.len() >= out_len {
            return out;
        }
        let b: Vec<u8> = (0..v).map(|j| a[j % u]).collect();
        for chunk in i_block.chunks_mut(v) {
            let mut carry = 1u16;
            for k in (0..chunk.len()).rev() {
                let sum = u16::from(chunk[k]) + u16::from(b[k]) + carry;
                chunk[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
}

/// `a = H(a)`, `iterations - 1` times. SHA-1 — what every Key Vault PFX uses, 2,000 or so
/// iterations for each of five derivations — goes through the `sha1` crate, which uses the
/// CPU's SHA extensions when present: a few times faster than ring's portable SHA-1, and
/// this loop is most of the CPU a conversion costs.
fn iterate(alg: &'static digest::Algorithm, a: &mut Vec<u8>, iterations: u64) {
    use sha1::Digest as _;
    if alg == &digest::SHA1_FOR_LEGACY_USE_ONLY {
        let mut h: [u8; 20] = a.as_slice().try_into().expect("SHA-1 output is 20 bytes");
        for _ in 1..iterations {
            h = sha1::Sha1::digest(h).into();
        }
        a.copy_from_slice(&h);
    } else {
        for _ in 1..iterations {
            let next = digest::digest(alg, a);
            a.copy_from_slice(next.as_ref());
        }
    }
}

const OID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const OID_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const OID_CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
const OID_X509_CERT: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const OID_PBE_SHA1_RC2_128: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
const OID_PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
const OID_PBE_SHA1_RC2_40: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];

enum AbsentFault {
    Der(DerFault),
    /// A PBES2-encrypted part: handled by the crate instead.
    Pbes2,
    Other(&'static str),
}

impl From<DerFault> for AbsentFault {
    fn from(f: DerFault) -> Self {
        AbsentFault::Der(f)
    }
}

/// Reads the bags of an `AuthenticatedSafe` whose password is absent (zero bytes).
fn read_absent(auth_safe: &[u8]) -> Result<Bags, AbsentFault> {
    let mut out = Bags {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    let (safes, _) = der::expect(auth_safe, der::SEQUENCE)?;
    let mut rest = safes.value;
    while !rest.is_empty() {
        let (info, r) = der::expect(rest, der::SEQUENCE)?;
        rest = r;
        let (ct, content) = der::expect(info.value, der::OID)?;
        let (explicit, _) = der::expect(content, der::CONTEXT_0)?;
        match ct.value {
            OID_DATA => {
                let (octets, _) = der::expect(explicit.value, der::OCTET_STRING)?;
                read_bags(octets.value, &mut out)?;
            }
            OID_ENCRYPTED_DATA => {
                let (enc, _) = der::expect(explicit.value, der::SEQUENCE)?;
                let (_version, r) = der::expect(enc.value, der::INTEGER)?;
                let (eci, _) = der::expect(r, der::SEQUENCE)?;
                let (_ct, r) = der::expect(eci.value, der::OID)?;
                let (alg, r) = der::expect(r, der::SEQUENCE)?;
                let (data, _) = der::read_tlv(r)?;
                let ciphertext = match data.tag {
                    0x80 => data.value.to_vec(),
                    // BER-style constructed [0] of OCTET STRING pieces.
                    0xa0 => {
                        let mut all = Vec::new();
                        let mut p = data.value;
                        while !p.is_empty() {
                            let (piece, r) = der::expect(p, der::OCTET_STRING)?;
                            all.extend_from_slice(piece.value);
                            p = r;
                        }
                        all
                    }
                    _ => return Err(AbsentFault::Der(DerFault::Malformed)),
                };
                let plain = decrypt_pbes1(alg.value, &ciphertext)?;
                read_bags(&plain, &mut out)?;
            }
            _ => return Err(AbsentFault::Other("unsupported content type in the PFX")),
        }
    }
    Ok(out)
}

fn read_bags(safe_contents: &[u8], out: &mut Bags) -> Result<(), AbsentFault> {
    let (bags, _) = der::expect(safe_contents, der::SEQUENCE)?;
    let mut rest = bags.value;
    while !rest.is_empty() {
        let (bag, r) = der::expect(rest, der::SEQUENCE)?;
        rest = r;
        let (id, r) = der::expect(bag.value, der::OID)?;
        let (value, _) = der::expect(r, der::CONTEXT_0)?;
        match id.value {
            OID_KEY_BAG => {
                let (pk, _) = der::expect(value.value, der::SEQUENCE)?;
                out.keys.push(Zeroizing::new(pk.raw.to_vec()));
            }
            OID_SHROUDED_KEY_BAG => {
                let (epki, _) = der::expect(value.value, der::SEQUENCE)?;
                let (alg, r) = der::expect(epki.value, der::SEQUENCE)?;
                let (data, _) = der::expect(r, der::OCTET_STRING)?;
                out.keys.push(decrypt_pbes1(alg.value, data.value)?);
            }
            OID_CERT_BAG => {
                let (cb, _) = der::expect(value.value, der::SEQUENCE)?;
                let (cert_id, r) = der::expect(cb.value, der::OID)?;
                if cert_id.value == OID_X509_CERT {
                    let (explicit, _) = der::expect(r, der::CONTEXT_0)?;
                    let (octets, _) = der::expect(explicit.value, der::OCTET_STRING)?;
                    out.certs.push(octets.value.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// PKCS#12 PBES1 decryption with the absent password. `alg` is the AlgorithmIdentifier's
/// content (OID, then `{ salt, iterations }`).
fn decrypt_pbes1(alg: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, AbsentFault> {
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};

    let (oid, params) = der::expect(alg, der::OID)?;
    let key_len = match oid.value {
        OID_PBE_SHA1_3DES => 24,
        OID_PBE_SHA1_RC2_40 => 5,
        OID_PBE_SHA1_RC2_128 => 16,
        OID_PBES2 => return Err(AbsentFault::Pbes2),
        _ => return Err(AbsentFault::Other("unsupported encryption scheme")),
    };
    let (p, _) = der::expect(params, der::SEQUENCE)?;
    let (salt, r) = der::expect(p.value, der::OCTET_STRING)?;
    let (it, _) = der::expect(r, der::INTEGER)?;
    if it.value.len() > 4 || it.value.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(AbsentFault::Other(
            "invalid or excessive encryption parameters",
        ));
    }
    let iterations = it.value.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
    if iterations > MAX_MAC_ITERATIONS {
        return Err(AbsentFault::Other(
            "invalid or excessive encryption parameters",
        ));
    }
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let key = kdf(sha1, &[], salt.value, 1, iterations.max(1), key_len);
    let iv = kdf(sha1, &[], salt.value, 2, iterations.max(1), 8);
    let bad = || AbsentFault::Other("decryption failed (bad padding)");
    let plain = if key_len == 24 {
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| bad())?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| bad())?
    } else {
        cbc::Decryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .map_err(|_| bad())?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| bad())?
    };
    Ok(Zeroizing::new(plain))
}

/// PBES1 encryption (`pbeWithSHAAnd40BitRC2-CBC` when `rc2`, else
/// `pbeWithSHAAnd3-KeyTripleDES-CBC`) under `password_bmp` (empty slice: the absent
/// password). Returns the DER AlgorithmIdentifier and the ciphertext.
pub(crate) fn pbes1_encrypt(
    password_bmp: &[u8],
    salt: &[u8],
    rc2: bool,
    plain: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let key = kdf(
        sha1,
        password_bmp,
        salt,
        1,
        PBE_ITERATIONS,
        if rc2 { 5 } else { 24 },
    );
    let iv = kdf(sha1, password_bmp, salt, 2, PBE_ITERATIONS, 8);
    let ct = if rc2 {
        cbc::Encryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .expect("RC2-40 takes a 5-byte key and an 8-byte IV")
            .encrypt_padded_vec::<Pkcs7>(plain)
    } else {
        cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .expect("3DES takes a 24-byte key and an 8-byte IV")
            .encrypt_padded_vec::<Pkcs7>(plain)
    };
    let oid = if rc2 {
        OID_PBE_SHA1_RC2_40
    } else {
        OID_PBE_SHA1_3DES
    };
    let params = der::tlv(
        der::SEQUENCE,
        &[&der::tlv(der::OCTET_STRING, &[salt]), &ITERATIONS_DER],
    );
    let alg = der::tlv(der::SEQUENCE, &[&der::tlv(der::OID, &[oid]), &params]);
    (alg.to_vec(), ct)
}

/// Iterations of every derivation in the PFX files this module writes (Key Vault's count).
const PBE_ITERATIONS: u64 = 2000;
/// `INTEGER 2000`
const ITERATIONS_DER: [u8; 4] = [der::INTEGER, 2, 0x07, 0xd0];
const OID_LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];

/// A PFX the way Key Vault serves a certificate's secret (as recorded in
/// `conformance/recorded/pkcs12-secret.recording.json`): the **absent** password (not the
/// empty one — p12-keystore and other strict readers refuse it), the key first in a
/// 3DES-shrouded bag inside plain data, then the certificates (leaf first) in a 3DES
/// `EncryptedData`, key and leaf tied by `localKeyID 01 00 00 00`, SHA-1 MAC with a 20-byte
/// salt, 2,000 iterations everywhere. For the emulator.
pub(crate) fn write_key_vault_pfx(certs_der: &[Vec<u8>], key_pkcs8: &[u8]) -> Vec<u8> {
    let salt = || rand::random::<[u8; 8]>();
    let local_key_id = der::tlv(
        der::SET,
        &[&der::tlv(
            der::SEQUENCE,
            &[
                &der::tlv(der::OID, &[OID_LOCAL_KEY_ID]),
                &der::tlv(der::SET, &[&der::tlv(der::OCTET_STRING, &[&[1, 0, 0, 0]])]),
            ],
        )],
    );

    // The key: plain data holding one shrouded key bag.
    let (alg, ct) = pbes1_encrypt(&[], &salt(), false, key_pkcs8);
    let key_safe = der::tlv(
        der::SEQUENCE,
        &[&shrouded_key_bag(&alg, &ct, Some(&local_key_id))],
    );
    let key_ci = content_info(OID_DATA, &der::tlv(der::OCTET_STRING, &[&key_safe]));

    // The certificates, encrypted together.
    let cert_bags: Vec<_> = certs_der
        .iter()
        .enumerate()
        .map(|(i, cert)| cert_bag(cert, (i == 0).then_some(&local_key_id[..])))
        .collect();
    let parts: Vec<&[u8]> = cert_bags.iter().map(|b| &b[..]).collect();
    let cert_safe = der::tlv(der::SEQUENCE, &parts);
    let (alg, ct) = pbes1_encrypt(&[], &salt(), false, &cert_safe);
    let certs_ci = encrypted_content_info(&alg, &ct);

    let auth_safe = der::tlv(der::SEQUENCE, &[&key_ci, &certs_ci]);
    seal_pfx(&[], &rand::random::<[u8; 20]>(), &auth_safe)
}

/// `ContentInfo { oid, [0] EXPLICIT content }`
fn content_info(oid: &[u8], explicit: &[u8]) -> Zeroizing<Vec<u8>> {
    der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[oid]),
            &der::tlv(der::CONTEXT_0, &[explicit]),
        ],
    )
}

/// `SafeBag { bagId, [0] EXPLICIT bagValue, bagAttributes? }`
fn bag(id: &[u8], value: &[u8], attrs: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[id]),
            &der::tlv(der::CONTEXT_0, &[value]),
            attrs.unwrap_or_default(),
        ],
    )
}

/// A `certBag` holding one X.509 certificate.
fn cert_bag(cert_der: &[u8], attrs: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    let value = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[OID_X509_CERT]),
            &der::tlv(der::CONTEXT_0, &[&der::tlv(der::OCTET_STRING, &[cert_der])]),
        ],
    );
    bag(OID_CERT_BAG, &value, attrs)
}

/// A `pkcs8ShroudedKeyBag` from [`pbes1_encrypt`]'s algorithm and ciphertext.
fn shrouded_key_bag(alg: &[u8], ct: &[u8], attrs: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    let epki = der::tlv(der::SEQUENCE, &[alg, &der::tlv(der::OCTET_STRING, &[ct])]);
    bag(OID_SHROUDED_KEY_BAG, &epki, attrs)
}

/// `ContentInfo { encryptedData, EncryptedData { 0, { data, alg, [0] IMPLICIT ct } } }`
fn encrypted_content_info(alg: &[u8], ct: &[u8]) -> Zeroizing<Vec<u8>> {
    let eci = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(der::OID, &[OID_DATA]),
            alg,
            &der::tlv(0x80, &[ct]),
        ],
    );
    let encrypted = der::tlv(der::SEQUENCE, &[&[der::INTEGER, 1, 0], &eci]);
    content_info(OID_ENCRYPTED_DATA, &encrypted)
}

/// The PFX around `auth_safe`: version 3, the `AuthenticatedSafe` as data, and a SHA-1 MAC
/// over it under `password_bmp` with `mac_salt`, [`PBE_ITERATIONS`] iterations.
fn seal_pfx(password_bmp: &[u8], mac_salt: &[u8], auth_safe: &[u8]) -> Vec<u8> {
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let mac_key = kdf(sha1, password_bmp, mac_salt, 3, PBE_ITERATIONS, 20);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac_key),
        auth_safe,
    );
    let digest_info = der::tlv(
        der::SEQUENCE,
        &[
            &der::tlv(
                der::SEQUENCE,
                &[&der::tlv(der::OID, &[OID_SHA1]), &[der::NULL, 0]],
            ),
            &der::tlv(der::OCTET_STRING, &[tag.as_ref()]),
        ],
    );
    let mac_data = der::tlv(
        der::SEQUENCE,
        &[
            &digest_info,
            &der::tlv(der::OCTET_STRING, &[mac_salt]),
            &ITERATIONS_DER,
        ],
    );
    let outer = content_info(OID_DATA, &der::tlv(der::OCTET_STRING, &[auth_safe]));
    der::tlv(der::SEQUENCE, &[&[der::INTEGER, 1, 3], &outer, &mac_data]).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from the `pkcs12` crate's test suite (password "ge@äheim" as BMP with
    /// its terminator, salt 01..08, SHA-256), covering a multi-block output.
    #[test]
    fn kdf_matches_known_answers() {
        let pass: Vec<u8> = "ge@äheim"
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_be_bytes)
            .collect();
        let salt = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let mac = kdf(&digest::SHA256, &pass, &salt, 3, 1000, 32);
        assert_eq!(
            hex::encode(mac.as_slice()),
            "3f9113f05c30a996c4a516409bdac9d065f44296ccd52bb75de3fcfdbe2bf130"
        );
        let key = kdf(&digest::SHA256, &pass, &salt, 1, 1000, 100);
        assert_eq!(
            hex::encode(key.as_slice()),
            "2b95a0569b63f641fae1efca32e84db3699ab74540628ba66283b58cf5400527d8d0ebe2ccbf768c51c4d8fbd1bb156be06c1c59cbb69e44052ffc37376fdb47b2de7f9e543de9d096d8e5474b220410ff1c5d8bb7e5bc0f61baeaa12fd0da1d7a970172"
        );
    }

    /// Builds a PFX the way Key Vault / Windows do (PBES1, SHA-1 MAC) under `password_bmp`:
    /// certificates in an RC2-40 (or 3DES) `EncryptedData`, the key in a 3DES shrouded bag.
    fn build_pfx(
        password_bmp: &[u8],
        cert_der: &[u8],
        key_pkcs8: &[u8],
        certs_rc2: bool,
    ) -> Vec<u8> {
        let salt = [9u8; 8];
        let encrypt = |rc2: bool, plain: &[u8]| pbes1_encrypt(password_bmp, &salt, rc2, plain);
        // Certificates.
        let cert_safe = der::tlv(der::SEQUENCE, &[&cert_bag(cert_der, None)]);
        let (alg, ct) = encrypt(certs_rc2, &cert_safe);
        let certs_ci = encrypted_content_info(&alg, &ct);
        // Key.
        let (alg, ct) = encrypt(false, key_pkcs8);
        let key_safe = der::tlv(der::SEQUENCE, &[&shrouded_key_bag(&alg, &ct, None)]);
        let key_ci = content_info(OID_DATA, &der::tlv(der::OCTET_STRING, &[&key_safe]));
        // MAC (SHA-1) over the AuthenticatedSafe.
        let auth_safe = der::tlv(der::SEQUENCE, &[&certs_ci, &key_ci]);
        seal_pfx(password_bmp, &salt, &auth_safe)
    }

    fn leaf() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pfx.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    /// The builder is right: p12-keystore (an independent reader) opens what it writes
    /// under the *empty* password, RC2-40 and 3DES alike.
    #[test]
    fn pbes1_pfx_under_the_empty_password_is_read_by_the_crate() {
        let (cert, key) = leaf();
        for rc2 in [true, false] {
            let pfx = build_pfx(&[0, 0], &cert, &key, rc2);
            let bags = read(&pfx).unwrap();
            assert_eq!(bags.certs, vec![cert.clone()]);
            assert_eq!(bags.keys[0].as_slice(), key.as_slice());
        }
    }

    /// The same structure under the *absent* password (Key Vault's case) goes through our
    /// own reader, for RC2-40 and 3DES certificate safes.
    #[test]
    fn pbes1_pfx_under_the_absent_password_is_read() {
        let (cert, key) = leaf();
        for rc2 in [true, false] {
            let pfx = build_pfx(&[], &cert, &key, rc2);
            assert!(matches!(
                p12_keystore::Pkcs12Archive::from_pkcs12(&pfx, ""),
                Err(P12Error::MacError(_))
            ));
            let bags = read(&pfx).unwrap();
            assert_eq!(bags.certs, vec![cert.clone()]);
            assert_eq!(bags.keys[0].as_slice(), key.as_slice());
        }
    }

    #[test]
    fn pfx_under_a_real_password_is_password_protected() {
        let (cert, key) = leaf();
        let bmp: Vec<u8> = "pw"
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_be_bytes)
            .collect();
        let pfx = build_pfx(&bmp, &cert, &key, true);
        assert!(matches!(read(&pfx), Err(Pkcs12Fault::PasswordProtected)));
    }
}
