//! Reading back what the store wrote: the leaf's validity from an installed PEM file.

use std::path::Path;

/// `notAfter` (unix seconds) of the first certificate in a PEM file; `None` if unreadable.
pub fn leaf_not_after(path: &Path) -> Option<i64> {
    let text = std::fs::read(path).ok()?;
    let text = zeroize::Zeroizing::new(text);
    let blocks = pem::parse_many(text.as_slice()).ok()?;
    let leaf = blocks.iter().find(|b| b.tag() == "CERTIFICATE")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.contents()).ok()?;
    Some(cert.validity().not_after.timestamp())
}
