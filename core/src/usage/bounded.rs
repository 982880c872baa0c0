//! A short byte string kept inline (no heap) that remembers when more was offered than it holds: for
//! the field names, keys and markers the usage reader compares, which are only ever a few bytes long.

/// Up to `N` bytes; once more are offered it is "overflowed" and holds no value until cleared.
#[derive(Debug, Clone, Copy)]
pub(super) struct BoundedBytes<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> BoundedBytes<N> {
    pub(super) const fn new() -> Self {
        BoundedBytes { bytes: [0; N], len: 0, overflowed: false }
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Appends `more`; past `N` bytes in all, the value is lost (overflowed), never truncated.
    pub(super) fn extend(&mut self, more: &[u8]) {
        if self.overflowed || more.is_empty() {
            return;
        }
        let end = self.len.checked_add(more.len());
        match end.and_then(|end| self.bytes.get_mut(self.len..end)) {
            Some(slot) => {
                slot.copy_from_slice(more);
                self.len = slot.len().saturating_add(self.len);
            }
            None => {
                self.len = 0;
                self.overflowed = true;
            }
        }
    }

    /// The bytes, or `None` once more than `N` were offered.
    pub(super) fn get(&self) -> Option<&[u8]> {
        if self.overflowed {
            None
        } else {
            self.bytes.get(..self.len)
        }
    }

    /// Whether nothing was offered since the last `clear`.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0 && !self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedBytes;

    #[test]
    fn keeps_up_to_its_bound_and_then_nothing() {
        let mut bytes = BoundedBytes::<4>::new();
        assert!(bytes.is_empty());
        assert_eq!(bytes.get(), Some(&b""[..]));
        bytes.extend(b"ab");
        bytes.extend(b"");
        bytes.extend(b"cd");
        assert_eq!(bytes.get(), Some(&b"abcd"[..]));
        bytes.extend(b"e");
        assert_eq!(bytes.get(), None);
        assert!(!bytes.is_empty());
        bytes.extend(b"f");
        assert_eq!(bytes.get(), None);
        bytes.clear();
        bytes.extend(b"xyz");
        assert_eq!(bytes.get(), Some(&b"xyz"[..]));
        bytes.extend(b"12345");
        assert_eq!(bytes.get(), None);
    }
}
