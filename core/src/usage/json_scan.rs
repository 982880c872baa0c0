//! A streaming JSON scanner that reads only what the usage reader needs from one JSON document fed in
//! pieces: it follows nesting depth, strings (with their escapes) and the object keys at depth 1 and
//! 2, copies the `usage` objects at the paths asked for and the top-level `type` string (each within
//! a bound), notes a top-level `error`, and skips everything else without storing it.
//!
//! It is lenient: brackets are counted, not matched, and only two things make it stop reading a
//! document: a first byte that opens neither an object nor an array, and anything but whitespace
//! after the top-level value closed. Keys compare on the raw bytes between the quotes, so an escaped key
//! (`"us\u0061ge"`) is not `usage`.

use super::bounded::BoundedBytes;
use super::{Counts, UsageFields};

/// The largest `usage` object copied; a larger one is ignored (real ones are well under 1 KiB).
pub(super) const USAGE_CAPTURE_BYTES: usize = 16 * 1024;
/// The longest top-level `type` string kept; a longer one is no event type the reader knows.
pub(super) const TYPE_CAPTURE_BYTES: usize = 64;
/// The longest object key kept to compare (the keys the scanner knows have at most 8 bytes).
const KEY_CAPTURE_BYTES: usize = 16;
/// The first size the usage copy gets; it grows up to `USAGE_CAPTURE_BYTES`.
const USAGE_CAPTURE_START_BYTES: usize = 512;

/// The bytes that open, close or separate something outside strings.
const STRUCTURAL: [u8; 7] = [b'{', b'[', b'}', b']', b'"', b':', b','];

/// The object keys the scanner tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Usage,
    Response,
    Message,
    Type,
    Error,
    Other,
}

impl Key {
    /// From the raw bytes between a key's quotes; `None` (a key too long to keep) is `Other`.
    fn from_raw(raw: Option<&[u8]>) -> Key {
        match raw {
            Some(b"usage") => Key::Usage,
            Some(b"response") => Key::Response,
            Some(b"message") => Key::Message,
            Some(b"type") => Key::Type,
            Some(b"error") => Key::Error,
            _ => Key::Other,
        }
    }
}

/// Where in a document `usage` objects are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UsagePaths {
    /// The top-level object's `usage`.
    pub(super) top_level: bool,
    /// The `usage` of the object under this top-level key (`response` or `message`).
    pub(super) under: Option<Key>,
}

/// What a document said, as far as the usage reader cares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Findings {
    /// The counts of the `usage` objects read so far, in document order.
    pub(super) counts: Counts,
    /// The raw bytes of the top-level `type` string: empty if there is none, `None` if too long.
    pub(super) event_type: BoundedBytes<TYPE_CAPTURE_BYTES>,
    /// Whether the top-level object has an `error` whose value is not `null`.
    pub(super) has_error: bool,
}

impl Findings {
    const fn new() -> Self {
        Findings { counts: Counts::NONE, event_type: BoundedBytes::new(), has_error: false }
    }
}

/// How far a document has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DocumentState {
    /// Nothing but whitespace yet.
    NotStarted,
    /// Inside the top-level value.
    Open,
    /// The top-level value closed (only whitespace since).
    Closed,
    /// The top-level value closed, then more than whitespace followed: the rest is skipped.
    Overrun,
    /// Not a JSON object or array: the rest is skipped.
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// What the string being read is to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringRole {
    /// An object key at depth 1 or 2: kept (bounded) to compare.
    Key,
    /// The top-level `type` value: kept (bounded) in the findings.
    EventType,
    /// Anything else: skipped.
    Skipped,
}

/// The copy of a `usage` object being read.
#[derive(Debug)]
struct UsageCapture {
    /// While an object is being copied: the depth its closing brace returns to.
    closes_at_depth: Option<usize>,
    bytes: Vec<u8>,
    /// The object grew past `USAGE_CAPTURE_BYTES`: it is skipped to its end and ignored.
    overflowed: bool,
}

impl UsageCapture {
    fn start(&mut self, depth: usize) {
        self.closes_at_depth = Some(depth);
        self.bytes.clear();
        self.overflowed = false;
    }

    /// Copies `more` when an object is being copied (checked inline: most bytes are not).
    #[inline]
    fn copy(&mut self, more: &[u8]) {
        if self.closes_at_depth.is_some() && !self.overflowed {
            self.append(more);
        }
    }

    fn append(&mut self, more: &[u8]) {
        let needed = self.bytes.len().saturating_add(more.len());
        if needed > USAGE_CAPTURE_BYTES {
            self.overflowed = true;
            self.bytes.clear();
            return;
        }
        if needed > self.bytes.capacity() {
            // Grow by hand so the capacity never passes the bound.
            let target = needed.max(self.bytes.capacity().saturating_mul(2)).max(USAGE_CAPTURE_START_BYTES);
            let target = target.min(USAGE_CAPTURE_BYTES);
            self.bytes.reserve_exact(target.saturating_sub(self.bytes.len()));
        }
        self.bytes.extend_from_slice(more);
    }

    /// Ends the copy: the usage fields, if the object fit and parses.
    fn finish(&mut self) -> Option<UsageFields> {
        self.closes_at_depth = None;
        let fields = if self.overflowed { None } else { serde_json::from_slice(&self.bytes).ok() };
        self.bytes.clear();
        self.overflowed = false;
        fields
    }
}

/// Reads one JSON document at a time, fed in pieces of any size.
#[derive(Debug)]
pub(super) struct JsonScanner {
    paths: UsagePaths,
    document: DocumentState,
    /// How many objects and arrays are open.
    depth: usize,
    /// The kinds of the open containers at depth 1 and 2.
    outer_containers: [Container; 2],
    in_string: bool,
    /// The last byte was a backslash inside a string.
    escaped: bool,
    string_role: StringRole,
    /// The next string at depth 1 or 2 is an object key.
    expect_key: bool,
    /// A `:` at depth 1 or 2 was read: the next significant byte starts the key's value.
    value_pending: bool,
    key: BoundedBytes<KEY_CAPTURE_BYTES>,
    /// The key at depth 1 whose value is being read.
    top_key: Key,
    /// The key at depth 2 whose value is being read.
    inner_key: Key,
    usage_capture: UsageCapture,
    findings: Findings,
}

impl JsonScanner {
    pub(super) fn new(paths: UsagePaths) -> Self {
        JsonScanner {
            paths,
            document: DocumentState::NotStarted,
            depth: 0,
            outer_containers: [Container::Object; 2],
            in_string: false,
            escaped: false,
            string_role: StringRole::Skipped,
            expect_key: false,
            value_pending: false,
            key: BoundedBytes::new(),
            top_key: Key::Other,
            inner_key: Key::Other,
            usage_capture: UsageCapture { closes_at_depth: None, bytes: Vec::new(), overflowed: false },
            findings: Findings::new(),
        }
    }

    pub(super) fn document(&self) -> DocumentState {
        self.document
    }

    pub(super) fn findings(&self) -> &Findings {
        &self.findings
    }

    /// Starts over for the next document, keeping the usage copy's allocation.
    pub(super) fn reset(&mut self) {
        let usage_bytes = std::mem::take(&mut self.usage_capture.bytes);
        *self = JsonScanner::new(self.paths);
        self.usage_capture.bytes = usage_bytes;
        self.usage_capture.bytes.clear();
    }

    /// The bytes the scanner holds on the heap (its allocation, not its content).
    #[cfg(any(test, feature = "test-support"))]
    pub(super) fn heap_capacity(&self) -> usize {
        self.usage_capture.bytes.capacity()
    }

    /// Reads the next piece of the document.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if matches!(self.document, DocumentState::Overrun | DocumentState::Malformed) {
                return;
            }
            if self.in_string {
                bytes = self.string_bytes(bytes);
            } else if self.document == DocumentState::Open && !self.value_pending {
                // Whitespace, numbers and literals inside the document change nothing but the copy:
                // skip to the next byte that opens, closes or separates something.
                let plain = bytes.iter().position(|&b| STRUCTURAL.contains(&b)).unwrap_or(bytes.len());
                let (run, rest) = bytes.split_at(plain);
                self.usage_capture.copy(run);
                match rest.split_first() {
                    Some((&byte, rest)) => {
                        self.usage_capture.copy(&[byte]);
                        self.structural_byte(byte);
                        bytes = rest;
                    }
                    None => bytes = rest,
                }
            } else if let Some((&byte, rest)) = bytes.split_first() {
                self.usage_capture.copy(&[byte]);
                self.structural_byte(byte);
                bytes = rest;
            }
        }
    }

    /// Reads string content up to and including the next quote or backslash; returns the rest.
    fn string_bytes<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        if self.escaped {
            // The byte after a backslash belongs to the string whatever it is (`\"`, `\\`, the `u`
            // of `\uXXXX`, whose hex digits are plain content).
            self.escaped = false;
            let (escaped, rest) = bytes.split_at(1.min(bytes.len()));
            self.string_content(escaped);
            return rest;
        }
        let special = bytes.iter().position(|&b| b == b'"' || b == b'\\').unwrap_or(bytes.len());
        let (content, rest) = bytes.split_at(special);
        self.string_content(content);
        let Some((&byte, rest)) = rest.split_first() else { return rest };
        self.usage_capture.copy(&[byte]);
        if byte == b'\\' {
            self.escaped = true;
            self.role_content(&[byte]);
        } else {
            self.end_string();
        }
        rest
    }

    fn string_content(&mut self, content: &[u8]) {
        self.usage_capture.copy(content);
        self.role_content(content);
    }

    fn role_content(&mut self, content: &[u8]) {
        match self.string_role {
            StringRole::Key => self.key.extend(content),
            StringRole::EventType => self.findings.event_type.extend(content),
            StringRole::Skipped => {}
        }
    }

    fn end_string(&mut self) {
        self.in_string = false;
        if self.string_role == StringRole::Key {
            let key = Key::from_raw(self.key.get());
            match self.depth {
                1 => {
                    self.top_key = key;
                    self.inner_key = Key::Other;
                }
                2 => self.inner_key = key,
                _ => {}
            }
        }
    }

    fn structural_byte(&mut self, byte: u8) {
        if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            return;
        }
        match self.document {
            DocumentState::NotStarted if byte == b'{' || byte == b'[' => self.document = DocumentState::Open,
            DocumentState::Open => {}
            DocumentState::Closed | DocumentState::Overrun => {
                self.document = DocumentState::Overrun;
                return;
            }
            DocumentState::NotStarted | DocumentState::Malformed => {
                self.document = DocumentState::Malformed;
                return;
            }
        }
        let value_start = std::mem::take(&mut self.value_pending);
        if value_start {
            self.value_starts(byte);
        }
        match byte {
            b'{' => self.open(Container::Object),
            b'[' => self.open(Container::Array),
            b'}' | b']' => self.close(),
            b'"' => self.start_string(value_start),
            b':' if self.in_object_at_key_depth() => {
                self.value_pending = true;
                self.expect_key = false;
            }
            b',' if self.in_object_at_key_depth() => self.expect_key = true,
            _ => {}
        }
    }

    /// The value of `top_key` (depth 1) or `inner_key` (depth 2) starts with `first`.
    fn value_starts(&mut self, first: u8) {
        if self.depth == 1 && self.top_key == Key::Error {
            self.findings.has_error = first != b'n';
        }
        if first == b'{' && self.usage_capture.closes_at_depth.is_none() && self.at_usage_path() {
            self.usage_capture.start(self.depth);
            self.usage_capture.copy(b"{");
        }
    }

    fn at_usage_path(&self) -> bool {
        match self.depth {
            1 => self.paths.top_level && self.top_key == Key::Usage,
            2 => {
                self.outer_containers == [Container::Object; 2]
                    && self.inner_key == Key::Usage
                    && self.paths.under == Some(self.top_key)
            }
            _ => false,
        }
    }

    fn in_object_at_key_depth(&self) -> bool {
        let index = self.depth.checked_sub(1);
        index.and_then(|index| self.outer_containers.get(index)) == Some(&Container::Object)
    }

    fn open(&mut self, container: Container) {
        self.depth = self.depth.saturating_add(1);
        if let Some(slot) = self.depth.checked_sub(1).and_then(|index| self.outer_containers.get_mut(index)) {
            *slot = container;
        }
        if self.depth == 2 {
            self.inner_key = Key::Other;
        }
        self.expect_key = container == Container::Object;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.expect_key = false;
        if self.usage_capture.closes_at_depth == Some(self.depth) {
            if let Some(fields) = self.usage_capture.finish() {
                self.findings.counts.record(&fields);
            }
        }
        if self.depth == 0 {
            self.document = DocumentState::Closed;
        }
    }

    fn start_string(&mut self, value_start: bool) {
        self.in_string = true;
        self.string_role = if !value_start && self.expect_key && self.in_object_at_key_depth() {
            self.key.clear();
            StringRole::Key
        } else if value_start && self.depth == 1 && self.top_key == Key::Type {
            self.findings.event_type.clear();
            StringRole::EventType
        } else {
            StringRole::Skipped
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP_LEVEL: UsagePaths = UsagePaths { top_level: true, under: None };
    const IN_RESPONSE: UsagePaths = UsagePaths { top_level: false, under: Some(Key::Response) };

    fn scan(paths: UsagePaths, document: &str) -> JsonScanner {
        let mut scanner = JsonScanner::new(paths);
        scanner.feed(document.as_bytes());
        scanner
    }

    #[test]
    fn document_states() {
        let cases = [
            ("", DocumentState::NotStarted),
            (" \n\t", DocumentState::NotStarted),
            ("{", DocumentState::Open),
            ("{\"a\":[1,{\"b\":\"}]\"}]", DocumentState::Open),
            ("{\"a\":[1,{\"b\":\"}]\"}]} \n", DocumentState::Closed),
            ("[1,2]", DocumentState::Closed),
            ("{} x", DocumentState::Overrun),
            ("{}{}", DocumentState::Overrun),
            ("null", DocumentState::Malformed),
            ("\"usage\"", DocumentState::Malformed),
            ("<html>", DocumentState::Malformed),
        ];
        for (document, expected) in cases {
            assert_eq!(scan(TOP_LEVEL, document).document(), expected, "{document:?}");
        }
    }

    #[test]
    fn reads_type_error_and_usage_at_their_paths_only() {
        let scanner = scan(
            IN_RESPONSE,
            r#"{"x":{"type":"no"},"type":"response.completed","error":null,"response":{"usage":{"input_tokens":3},"x":{"usage":{"input_tokens":9}}}}"#,
        );
        assert_eq!(scanner.findings().event_type.get(), Some(&b"response.completed"[..]));
        assert!(!scanner.findings().has_error);
        assert_eq!(scanner.findings().counts.input_tokens, Some(3));

        let scanner = scan(
            TOP_LEVEL,
            r#"{"error":{"message":"x"},"type":"x_but_longer_than_sixty_four_bytes_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
        );
        assert!(scanner.findings().has_error);
        assert_eq!(scanner.findings().event_type.get(), None);
    }

    #[test]
    fn reset_keeps_the_allocation_and_forgets_the_rest() {
        let mut scanner = scan(TOP_LEVEL, r#"{"type":"a","usage":{"prompt_tokens":1}}"#);
        let capacity = scanner.heap_capacity();
        assert!(capacity > 0);
        scanner.reset();
        assert_eq!(scanner.heap_capacity(), capacity);
        assert_eq!(scanner.document(), DocumentState::NotStarted);
        assert_eq!(scanner.findings().counts.input_tokens, None);
        assert!(scanner.findings().event_type.is_empty());
    }
}
