//! The little DER the module needs by hand: walking TLVs (to tell a truncated value from a
//! malformed one, and to read the PFX `MacData` and SEC1 keys), and writing the few wrappers
//! that turn PKCS#1 and SEC1 keys into PKCS#8.
//!
//! Everything here is bounds-checked and never panics on any input.

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
    /// The whole element, header included.
    pub raw: &'a [u8],
}

/// Why a TLV could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DerFault {
    /// The header promises more bytes than there are.
    Truncated,
    /// Not DER (indefinite or over-long length, multi-byte tag, empty input…).
    Malformed,
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OID: u8 = 0x06;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const CONTEXT_0: u8 = 0xa0;
pub(crate) const CONTEXT_1: u8 = 0xa1;

/// Reads one TLV from the front of `input`; returns it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerFault> {
    let (&tag, rest) = input.split_first().ok_or(DerFault::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(DerFault::Malformed); // high tag numbers never occur in what we read
    }
    let (&first, rest) = rest.split_first().ok_or(DerFault::Truncated)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(DerFault::Malformed); // indefinite length, or absurd
        }
        if rest.len() < n {
            return Err(DerFault::Truncated);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerFault::Truncated);
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            value: &rest[..len],
            raw: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// Reads one TLV that must carry `tag`.
pub(crate) fn expect(input: &[u8], tag: u8) -> Result<(Tlv<'_>, &[u8]), DerFault> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag {
        return Err(DerFault::Malformed);
    }
    Ok((tlv, rest))
}

/// Checks that `input` is exactly one complete SEQUENCE (trailing bytes are malformed,
/// a short one is truncated).
pub(crate) fn check_complete_sequence(input: &[u8]) -> Result<(), DerFault> {
    let (_, rest) = expect(input, SEQUENCE)?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DerFault::Malformed)
    }
}

/// Appends a DER header for `tag` and `len`.
fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one TLV whose content is the concatenation of `parts`.
pub(crate) fn tlv(tag: u8, parts: &[&[u8]]) -> zeroize::Zeroizing<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(len + 6));
    push_header(&mut out, tag, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let body = vec![7u8; len];
            let enc = tlv(OCTET_STRING, &[&body]);
            let (t, rest) = read_tlv(&enc).unwrap();
            assert_eq!(t.value.len(), len);
            assert!(rest.is_empty());
            assert_eq!(t.raw.len(), enc.len());
        }
    }

    #[test]
    fn short_input_is_truncated_not_malformed() {
        let enc = tlv(SEQUENCE, &[&[1u8; 300]]);
        for cut in 1..enc.len() {
            assert_eq!(
                check_complete_sequence(&enc[..cut]).unwrap_err(),
                DerFault::Truncated,
                "cut at {cut}"
            );
        }
        assert_eq!(
            check_complete_sequence(&[]).unwrap_err(),
            DerFault::Truncated
        );
    }

    #[test]
    fn indefinite_length_is_malformed() {
        assert_eq!(
            read_tlv(&[0x30, 0x80, 0, 0]).unwrap_err(),
            DerFault::Malformed
        );
    }
}
