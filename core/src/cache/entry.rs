//! The cache entry codec: one response stored in one shared-data slot, with the full cache key so
//! that a slot shared by two requests never serves one the other's answer.

use crate::body_format::BodyFormat;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 32 + 8 + 1 + 4;

/// A cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: [u8; 32],
    pub stored_at_ns: u64,
    pub format: BodyFormat,
    pub body: Vec<u8>,
}

/// A borrowed view of an encoded entry, decoded without copying the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub key: &'a [u8],
    pub stored_at_ns: u64,
    pub format: BodyFormat,
    pub body: &'a [u8],
}

impl Entry {
    /// `[version][key: 32][stored_at_ns: u64 LE][format: u8][body length: u32 LE][body]`.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let body_len = u32::try_from(self.body.len()).ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.stored_at_ns.to_le_bytes());
        out.push(match self.format {
            BodyFormat::Json => 0,
            BodyFormat::EventStream => 1,
        });
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(&self.body);
        Some(out)
    }
}

/// Decodes an entry; `None` for another version, a wrong length (truncated or padded) or an empty
/// slot, which all read as a miss.
pub fn decode(bytes: &[u8]) -> Option<EntryRef<'_>> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    let (key, rest) = rest.split_at_checked(32)?;
    let (stored_at, rest) = rest.split_at_checked(8)?;
    let (&format, rest) = rest.split_first()?;
    let (body_len, body) = rest.split_at_checked(4)?;
    let body_len = u32::from_le_bytes(body_len.try_into().ok()?);
    if usize::try_from(body_len).ok()? != body.len() {
        return None;
    }
    let format = match format {
        0 => BodyFormat::Json,
        1 => BodyFormat::EventStream,
        _ => return None,
    };
    Some(EntryRef { key, stored_at_ns: u64::from_le_bytes(stored_at.try_into().ok()?), format, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry { key: [7; 32], stored_at_ns: 99, format: BodyFormat::EventStream, body: b"data: {}\n\n".to_vec() }
    }

    #[test]
    fn round_trips() {
        let encoded = entry().encode().unwrap();
        let decoded = decode(&encoded).unwrap();
        assert_eq!(
            (decoded.key, decoded.stored_at_ns, decoded.format, decoded.body),
            (&[7u8; 32][..], 99, BodyFormat::EventStream, &b"data: {}\n\n"[..])
        );
    }

    #[test]
    fn torn_truncated_or_foreign_bytes_never_decode() {
        let encoded = entry().encode().unwrap();
        for len in 0..encoded.len() {
            assert_eq!(decode(&encoded[..len]), None, "truncated to {len}");
        }
        let mut padded = encoded.clone();
        padded.push(b'x');
        assert_eq!(decode(&padded), None);
        let mut other_version = encoded.clone();
        other_version[0] = 2;
        assert_eq!(decode(&other_version), None);
        let mut bad_format = encoded;
        bad_format[41] = 9;
        assert_eq!(decode(&bad_format), None);
    }
}
