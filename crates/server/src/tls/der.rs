//! The one thing read from a client's certificate: its subject's common name, which etcd
//! takes as the user name under `--client-cert-auth`. A few lines of DER walking rather
//! than an X.509 parser: the certificate was verified before, and a certificate this walk
//! cannot follow simply has no common name.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT`: the version, present from X.509 v2 on.
const VERSION: u8 = 0xa0;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// One DER element at the start of `bytes`: its tag, its contents, and what follows it.
fn element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (digits, rest) = rest.split_at_checked(count)?;
        let length = digits
            .iter()
            .fold(0usize, |length, &digit| length << 8 | usize::from(digit));
        (length, rest)
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// The contents of the element at the start of `bytes` if it has tag `tag`.
fn expect(tag: u8, bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(bytes)?;
    (found == tag).then_some((contents, rest))
}

/// The subject's common name of a DER certificate (the last one, as Go's `x509` keeps
/// it, if there are several); `None` if it has none or cannot be read.
pub fn common_name(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(SEQUENCE, certificate)?;
    let (mut fields, _) = expect(SEQUENCE, certificate)?;
    if let Some((_, after)) = expect(VERSION, fields) {
        fields = after;
    }
    // The serial number, the signature algorithm, the issuer and the validity.
    for _ in 0..4 {
        fields = element(fields)?.2;
    }
    let (mut names, _) = expect(SEQUENCE, fields)?;
    let mut found = None;
    while !names.is_empty() {
        let (mut attributes, after) = expect(SET, names)?;
        names = after;
        while !attributes.is_empty() {
            let (attribute, after) = expect(SEQUENCE, attributes)?;
            attributes = after;
            let (oid, value) = expect(OID, attribute)?;
            if oid == COMMON_NAME {
                found = Some(text(value)?);
            }
        }
    }
    found
}

/// A directory string: UTF-8, printable, IA5 or teletex (read as UTF-8), or BMP (UTF-16).
fn text(value: &[u8]) -> Option<String> {
    let (tag, bytes, _) = element(value)?;
    match tag {
        0x0c | 0x13 | 0x14 | 0x16 => Some(String::from_utf8_lossy(bytes).into_owned()),
        0x1e => {
            let units = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::{Authority, Request};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_common_name_of_issued_certificates_reads_back() {
        let ca = Authority::new("test CA").unwrap();
        assert_eq!(common_name(&der(&ca.cert)).as_deref(), Some("test CA"));
        for name in ["alice", "root", "ünïcode user", ""] {
            let issued = ca.issue(&Request::new(name, &["127.0.0.1"])).unwrap();
            assert_eq!(common_name(&der(&issued.cert)).as_deref(), Some(name));
        }
    }

    /// A DER element: `tag`, the length (long form from 128 bytes, or when `long`), the
    /// contents.
    fn tlv(tag: u8, contents: &[u8], long: bool) -> Vec<u8> {
        let length = u8::try_from(contents.len()).unwrap();
        let mut bytes = match long || length >= 0x80 {
            true => vec![tag, 0x81, length],
            false => vec![tag, length],
        };
        bytes.extend_from_slice(contents);
        bytes
    }

    #[test]
    fn lengths_in_long_form_and_bmp_strings_read() {
        // SEQUENCE { SEQUENCE { INTEGER 1, SEQ{}, SEQ{}, SEQ{}, subject } }, with the
        // subject's CN a BMPString and the outer lengths in long form.
        let name = tlv(0x1e, &[0x00, b'h', 0x00, b'i'], false);
        let atv = tlv(
            SEQUENCE,
            &[&tlv(OID, &COMMON_NAME, false)[..], &name].concat(),
            false,
        );
        let subject = tlv(SEQUENCE, &tlv(SET, &atv, false), false);
        let skipped = [0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00];
        let tbs = tlv(SEQUENCE, &[&skipped[..], &subject].concat(), true);
        let certificate = tlv(SEQUENCE, &tbs, true);
        assert_eq!(common_name(&certificate).as_deref(), Some("hi"));
        assert_eq!(common_name(&certificate[..certificate.len() - 1]), None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_a_name_or_none_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)
        ) {
            let _ = common_name(&bytes);
        }
    }
}
