//! A bounded splitter of server-sent events (the WHATWG EventSource format) for the stream translations:
//! bytes go in, in chunks of any size, and whole events come out (the `event` name and the `data` lines
//! joined with "\n"), one at a time, so a translator holds no more than the event it is reading.
//!
//! Lines end in LF, CR or CRLF (also when the CR and the LF arrive in different chunks); a leading
//! UTF-8 byte order mark is skipped; lines starting with `:` are comments; `name:value` loses one space
//! after the colon; a line without a colon is a field with an empty value; an empty line dispatches the
//! event if it had a `data` line (an event without one only resets the name). `id` and `retry` are
//! skipped. An event (with the line being read) larger than the bound is an error, and the splitter
//! stays failed: memory never grows past the bound, whatever the upstream sends.

/// The largest event the translations accept, in bytes (its field lines, without line ends).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The value of the event's last `event` field; empty when it had none (the spec's "message").
    pub name: String,
    /// The event's `data` lines joined with "\n".
    pub data: Vec<u8>,
}

/// An event was larger than the splitter's bound; the splitter reads nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    pub max_event_bytes: usize,
}

impl std::fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an upstream event is larger than {} bytes", self.max_event_bytes)
    }
}

/// Splits one event stream, fed in chunks of any size, into events.
#[derive(Debug)]
pub struct SseSplitter {
    max_event_bytes: usize,
    /// The line being read (without its line end).
    line: Vec<u8>,
    name: Vec<u8>,
    data: Vec<u8>,
    /// The current event has had a `data` line.
    has_data: bool,
    /// The last line ended in CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// No line has ended yet: the first one may start with a byte order mark.
    first_line: bool,
    failed: bool,
}

impl SseSplitter {
    pub fn new(max_event_bytes: usize) -> Self {
        SseSplitter {
            max_event_bytes,
            line: Vec::new(),
            name: Vec::new(),
            data: Vec::new(),
            has_data: false,
            after_cr: false,
            first_line: true,
            failed: false,
        }
    }

    /// Reads from `input` until an event is complete, and returns it with `input` left at the bytes
    /// after it; `Ok(None)` once `input` is used up without completing one (the partial event is kept).
    pub fn next_event(&mut self, input: &mut &[u8]) -> Result<Option<SseEvent>, EventTooLarge> {
        while let Some((&first, rest)) = input.split_first() {
            if self.failed {
                return Err(self.too_large());
            }
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                *input = rest;
                continue;
            }
            if first == b'\r' || first == b'\n' {
                self.after_cr = first == b'\r';
                *input = rest;
                if let Some(event) = self.end_line() {
                    return Ok(Some(event));
                }
                continue;
            }
            let line_end = input.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(input.len());
            let (line_part, after) = input.split_at(line_end);
            self.take_line_bytes(line_part)?;
            *input = after;
        }
        if self.failed {
            return Err(self.too_large());
        }
        Ok(None)
    }

    /// The stream has ended: ends the line in progress and dispatches an event that lacks its final
    /// empty line (leniently, as the gateway's usage reader does).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        self.after_cr = false;
        if !self.line.is_empty() {
            // A non-empty line only adds to the event; it never dispatches one.
            let _ = self.end_line();
        }
        Ok(self.dispatch())
    }

    fn too_large(&self) -> EventTooLarge {
        EventTooLarge { max_event_bytes: self.max_event_bytes }
    }

    fn take_line_bytes(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        let held = self.line.len().saturating_add(self.name.len()).saturating_add(self.data.len());
        if held.saturating_add(bytes.len()) > self.max_event_bytes {
            self.failed = true;
            self.line = Vec::new();
            self.name = Vec::new();
            self.data = Vec::new();
            return Err(self.too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// A line has ended: applies its field, or dispatches the event if it was empty.
    fn end_line(&mut self) -> Option<SseEvent> {
        let mut line = std::mem::take(&mut self.line);
        let mut content = line.as_slice();
        if std::mem::take(&mut self.first_line) {
            content = content.strip_prefix(BYTE_ORDER_MARK).unwrap_or(content);
        }
        let event = if content.is_empty() {
            self.dispatch()
        } else {
            self.field(content);
            None
        };
        line.clear();
        self.line = line;
        event
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (name, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if std::mem::replace(&mut self.has_data, true) {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
            b"event" => {
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let name = String::from_utf8_lossy(&self.name).into_owned();
        self.name.clear();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent { name, data: std::mem::take(&mut self.data) })
    }
}

/// What a stream translation does with the events of its upstream stream.
pub(super) trait EventTranslator {
    /// Translates one upstream event, appending the client's bytes to `out`. `cut` says the body
    /// ended inside the event (before its empty line): one that cannot be read was cut short, and is
    /// dropped rather than reported as the provider's error.
    fn event(&mut self, event: SseEvent, cut: bool, out: &mut Vec<u8>);
    /// The upstream stream cannot be translated further (`message` says why): appends the client's
    /// error event to `out`; the translation then ends.
    fn protocol_error(&mut self, message: &str, out: &mut Vec<u8>);
    /// The translation has ended (the upstream stream's end, an error): later bytes are ignored.
    fn ended(&self) -> bool;
}

/// Splits `chunk` into events and translates each; returns the client's bytes.
pub(super) fn translate_chunk(
    splitter: &mut SseSplitter,
    translator: &mut impl EventTranslator,
    chunk: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut input = chunk;
    while !translator.ended() {
        match splitter.next_event(&mut input) {
            Ok(Some(event)) => translator.event(event, false, &mut out),
            Ok(None) => break,
            Err(too_large) => {
                translator.protocol_error(&too_large.to_string(), &mut out);
                break;
            }
        }
    }
    out
}

/// The upstream body has ended: translates an event that lacked its final empty line; returns the
/// client's bytes. Nothing is made up for a stream that was cut.
pub(super) fn translate_end(splitter: &mut SseSplitter, translator: &mut impl EventTranslator) -> Vec<u8> {
    let mut out = Vec::new();
    if !translator.ended() {
        match splitter.finish() {
            Ok(Some(event)) => translator.event(event, true, &mut out),
            Ok(None) => {}
            Err(too_large) => translator.protocol_error(&too_large.to_string(), &mut out),
        }
    }
    out
}
