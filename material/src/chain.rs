//! Ordering: the leaf is found by its key, then each issuer by name and key identifier.

use x509_parser::extensions::ParsedExtension;

use crate::der::{self, DerFault};
use crate::key::{self, PublicKey};
use crate::model::{MAX_CHAIN_DEPTH, MaterialError, MaterialWarning};

/// What ordering needs from one certificate.
#[derive(Debug)]
pub(crate) struct Cert {
    pub subject: String,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    issuer_text: String,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    is_ca: bool,
    public: Option<PublicKey>,
    pub not_before: i64,
    pub not_after: i64,
}

impl Cert {
    /// Parses one certificate; `index` (from 1, input order) is for messages.
    pub fn parse(der_bytes: &[u8], index: usize) -> Result<Cert, MaterialError> {
        der::check_complete_sequence(der_bytes).map_err(|f| match f {
            DerFault::Truncated => MaterialError::TruncatedDer {
                what: format!("certificate #{index}"),
            },
            DerFault::Malformed => MaterialError::MalformedCertificate {
                index,
                reason: "not a single DER SEQUENCE".into(),
            },
        })?;
        let (_, cert) = x509_parser::parse_x509_certificate(der_bytes).map_err(|e| {
            MaterialError::MalformedCertificate {
                index,
                reason: e.to_string(),
            }
        })?;
        let mut ski = None;
        let mut aki = None;
        for ext in cert.iter_extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        Ok(Cert {
            subject: cert.subject().to_string(),
            subject_raw: cert.subject().as_raw().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            issuer_text: cert.issuer().to_string(),
            ski,
            aki,
            is_ca: cert.is_ca(),
            public: key::spki_public_key(cert.public_key().raw),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The certificate's public key, when of a kind we handle.
    pub fn public(&self) -> Option<&PublicKey> {
        self.public.as_ref()
    }

    /// Whether `self` names `issuer` as its issuer: same name (byte-exact, or the same text
    /// when encodings differ) and, when both carry key identifiers, the same key.
    fn issued_by(&self, issuer: &Cert) -> bool {
        let same_name = self.issuer_raw == issuer.subject_raw || self.issuer_text == issuer.subject;
        let keys_agree = match (&self.aki, &issuer.ski) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        };
        same_name && keys_agree
    }

    /// Self-issued: its own issuer (a root, or a lone self-signed certificate).
    fn is_self_issued(&self) -> bool {
        self.issued_by(self)
    }
}

/// The result of ordering: indexes into the certificate and key lists.
pub(crate) struct Ordered {
    pub key: usize,
    pub leaf: usize,
    pub chain: Vec<usize>,
}

/// Picks the key and the leaf, then walks issuers up from the leaf.
pub(crate) fn order(
    certs: &[Cert],
    keys: &[key::PrivateKey],
    warnings: &mut Vec<MaterialWarning>,
) -> Result<Ordered, MaterialError> {
    // Distinct certificates only (merged PFX files repeat them); the first copy wins.
    let distinct: Vec<usize> = (0..certs.len())
        .filter(|&i| {
            !(0..i).any(|j| {
                certs[j].subject_raw == certs[i].subject_raw
                    && certs[j].public == certs[i].public
                    && certs[j].issuer_raw == certs[i].issuer_raw
                    && certs[j].not_after == certs[i].not_after
                    && certs[j].not_before == certs[i].not_before
            })
        })
        .collect();

    let matching: Vec<usize> = (0..keys.len())
        .filter(|&k| {
            distinct
                .iter()
                .any(|&c| certs[c].public.as_ref() == Some(&keys[k].public))
        })
        .collect();
    let key = match matching.as_slice() {
        [] => {
            return Err(MaterialError::KeyMatchesNoCertificate {
                certificates: distinct.len(),
            });
        }
        [one] => *one,
        many => return Err(MaterialError::AmbiguousPrivateKeys { count: many.len() }),
    };

    // The leaf: a certificate of that key; prefer an end-entity one, then the newest.
    let leaf = distinct
        .iter()
        .copied()
        .filter(|&c| certs[c].public.as_ref() == Some(&keys[key].public))
        .max_by_key(|&c| (!certs[c].is_ca, certs[c].not_after, std::cmp::Reverse(c)))
        .expect("a matching key has a matching certificate");

    let mut used = vec![leaf];
    let mut chain = Vec::new();
    let mut current = leaf;
    while !certs[current].is_self_issued() {
        // Among possible issuers, prefer one whose key identifier matched explicitly, then
        // the newest (a renewed intermediate beside its predecessor).
        let next = distinct
            .iter()
            .copied()
            .filter(|c| !used.contains(c) && certs[current].issued_by(&certs[*c]))
            .max_by_key(|&c| {
                let explicit = certs[current].aki.is_some() && certs[current].aki == certs[c].ski;
                (explicit, certs[c].not_after, std::cmp::Reverse(c))
            });
        let Some(next) = next else { break };
        used.push(next);
        chain.push(next);
        if used.len() > MAX_CHAIN_DEPTH {
            // Count the whole path for the message.
            let mut depth = used.len();
            let mut cur = next;
            while !certs[cur].is_self_issued() {
                match distinct
                    .iter()
                    .copied()
                    .find(|c| !used.contains(c) && certs[cur].issued_by(&certs[*c]))
                {
                    Some(n) => {
                        used.push(n);
                        depth += 1;
                        cur = n;
                    }
                    None => break,
                }
            }
            return Err(MaterialError::ChainTooDeep {
                depth,
                limit: MAX_CHAIN_DEPTH,
            });
        }
        current = next;
    }

    for &c in &distinct {
        if !used.contains(&c) {
            warnings.push(MaterialWarning::UnrelatedCertificateDropped {
                subject: certs[c].subject.clone(),
            });
        }
    }
    Ok(Ordered { key, leaf, chain })
}
