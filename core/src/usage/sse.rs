//! A streaming parser for server-sent events (the WHATWG EventSource format) that never holds a line:
//! it keeps only the first bytes of a field name, and hands each event's data to a sink as it
//! arrives, then tells the sink when the event is dispatched.
//!
//! Lines end in LF, CR or CRLF (also when the CR and the LF arrive in different chunks); a leading
//! UTF-8 byte order mark is skipped; lines starting with `:` are comments; `name:value` loses one
//! space after the colon; a line without a colon is a field with an empty value; the `data` lines of
//! an event are joined with "\n"; an empty line dispatches the event (if it had data). Fields other
//! than `data` (`event`, `id`, `retry`) do not decide anything here and are skipped.

use std::ops::ControlFlow;

use super::bounded::BoundedBytes;

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";
/// The longest field name kept: enough for `data` (and to tell it from a longer name).
const FIELD_NAME_BYTES: usize = 8;

/// Receives the events of a stream.
pub(super) trait EventSink {
    /// The next bytes of the current event's data (its `data` lines joined with "\n").
    fn data(&mut self, bytes: &[u8]);
    /// The current event is complete (it had at least one `data` line). `Break` stops the parser
    /// for the rest of the chunk.
    fn dispatch(&mut self) -> ControlFlow<()>;
}

/// Where the parser is in the current line.
#[derive(Debug, Clone, Copy)]
enum LineState {
    /// At the start of a line (empty name), or reading the field name.
    FieldName(BoundedBytes<FIELD_NAME_BYTES>),
    /// A comment, or a field whose value is not read: skipped to the line end.
    Skipped,
    /// In the value of a `data` field; `at_start` until the optional space after the colon is past.
    Data { at_start: bool },
}

const LINE_START: LineState = LineState::FieldName(BoundedBytes::new());

/// Parses one event stream fed in chunks of any size.
#[derive(Debug)]
pub(super) struct SseParser {
    /// How many bytes of a leading byte order mark have been matched; `None` once past the start.
    byte_order_mark_matched: Option<usize>,
    line: LineState,
    /// The last line ended in CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// The current event has had a `data` line.
    event_has_data: bool,
}

impl SseParser {
    pub(super) fn new() -> Self {
        SseParser { byte_order_mark_matched: Some(0), line: LINE_START, after_cr: false, event_has_data: false }
    }

    /// Parses the next chunk.
    pub(super) fn feed(&mut self, mut chunk: &[u8], sink: &mut impl EventSink) -> ControlFlow<()> {
        while let Some(matched) = self.byte_order_mark_matched {
            let Some((&byte, rest)) = chunk.split_first() else { return ControlFlow::Continue(()) };
            if BYTE_ORDER_MARK.get(matched) == Some(&byte) {
                chunk = rest;
                let matched = matched.saturating_add(1);
                self.byte_order_mark_matched = Some(matched).filter(|&matched| matched < BYTE_ORDER_MARK.len());
            } else {
                // Not a byte order mark after all: what looked like one is content.
                self.byte_order_mark_matched = None;
                self.parse(BYTE_ORDER_MARK.get(..matched).unwrap_or_default(), sink)?;
            }
        }
        self.parse(chunk, sink)
    }

    /// The stream has ended: ends the line in progress and dispatches an event that lacks its final
    /// empty line.
    pub(super) fn finish(&mut self, sink: &mut impl EventSink) -> ControlFlow<()> {
        if let Some(matched) = self.byte_order_mark_matched.take() {
            self.parse(BYTE_ORDER_MARK.get(..matched).unwrap_or_default(), sink)?;
        }
        let line_was_empty = matches!(self.line, LineState::FieldName(name) if name.is_empty());
        self.end_line(sink)?;
        if !line_was_empty {
            self.dispatch(sink)?;
        }
        self.after_cr = false;
        ControlFlow::Continue(())
    }

    fn parse(&mut self, mut rest: &[u8], sink: &mut impl EventSink) -> ControlFlow<()> {
        while let Some((&first, after_first)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = after_first;
                continue;
            }
            if first == b'\r' || first == b'\n' {
                self.after_cr = first == b'\r';
                rest = after_first;
                self.end_line(sink)?;
                continue;
            }
            let line_end = rest.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(rest.len());
            let (line_part, after) = rest.split_at(line_end);
            self.line_bytes(line_part, sink);
            rest = after;
        }
        ControlFlow::Continue(())
    }

    /// Bytes of the current line (no line end among them).
    fn line_bytes(&mut self, mut bytes: &[u8], sink: &mut impl EventSink) {
        while !bytes.is_empty() {
            match &mut self.line {
                LineState::FieldName(name) => {
                    if name.is_empty() && bytes.first() == Some(&b':') {
                        self.line = LineState::Skipped;
                        return;
                    }
                    let colon = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
                    let (name_part, rest) = bytes.split_at(colon);
                    name.extend(name_part);
                    let Some((_colon, value)) = rest.split_first() else { return };
                    let name = *name;
                    self.line = self.field_starts(name, sink);
                    bytes = value;
                }
                LineState::Skipped => return,
                LineState::Data { at_start } => {
                    if std::mem::take(at_start) {
                        bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
                    }
                    sink.data(bytes);
                    return;
                }
            }
        }
    }

    /// A field named `name` starts: how its value is read.
    fn field_starts(&mut self, name: BoundedBytes<FIELD_NAME_BYTES>, sink: &mut impl EventSink) -> LineState {
        if name.get() != Some(b"data") {
            return LineState::Skipped;
        }
        if std::mem::replace(&mut self.event_has_data, true) {
            sink.data(b"\n");
        }
        LineState::Data { at_start: true }
    }

    fn end_line(&mut self, sink: &mut impl EventSink) -> ControlFlow<()> {
        let line = std::mem::replace(&mut self.line, LINE_START);
        match line {
            LineState::FieldName(name) if name.is_empty() => self.dispatch(sink),
            LineState::FieldName(name) => {
                // A field without a colon: its value is empty.
                self.field_starts(name, sink);
                ControlFlow::Continue(())
            }
            LineState::Skipped | LineState::Data { .. } => ControlFlow::Continue(()),
        }
    }

    fn dispatch(&mut self, sink: &mut impl EventSink) -> ControlFlow<()> {
        if std::mem::take(&mut self.event_has_data) {
            sink.dispatch()
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the events' data whole (tests only).
    #[derive(Default)]
    struct Events {
        current: Vec<u8>,
        dispatched: Vec<String>,
    }

    impl EventSink for Events {
        fn data(&mut self, bytes: &[u8]) {
            self.current.extend_from_slice(bytes);
        }

        fn dispatch(&mut self) -> ControlFlow<()> {
            let data = std::mem::take(&mut self.current);
            self.dispatched.push(String::from_utf8_lossy(&data).into_owned());
            ControlFlow::Continue(())
        }
    }

    fn parse_in_chunks(stream: &[u8], chunk_size: usize) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut events = Events::default();
        for chunk in stream.chunks(chunk_size) {
            let _ = parser.feed(chunk, &mut events);
        }
        let _ = parser.finish(&mut events);
        events.dispatched
    }

    #[test]
    fn follows_the_event_stream_format() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"data: a\n\ndata: b\n\n", &["a", "b"]),
            (b"data: a\r\n\r\ndata: b\r\rdata: c\n\n", &["a", "b", "c"]),
            (b"data:a\ndata:  b\ndata\ndata:\n\n", &["a\n b\n\n"]),
            (b": comment\ndata: a\n:data: x\n\n", &["a"]),
            (b"event: ping\nid: 1\nretry: 5\n\n", &[]),
            (b"event: x\ndata: a\n\n\n\n", &["a"]),
            (b"\xEF\xBB\xBFdata: a\n\n", &["a"]),
            (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", &["b"]),
            (b"\xEF\xBBdata: a\n\ndata: b\n\n", &["b"]),
            (b"\xEFdata: a\n\n", &[]),
            (b"dataa: a\ndatadatadata: b\nDATA: c\n data: d\n\n", &[]),
            (b"data: a\n\ndata: unfinished", &["a", "unfinished"]),
            (b"data: a\n\ndata: unfinished\n", &["a", "unfinished"]),
            (b"data: a\n\ndata", &["a", ""]),
            (b"data: a\r", &["a"]),
            (b"\xEF\xBB", &[]),
            (b"", &[]),
        ];
        for (stream, expected) in cases {
            for chunk_size in 1..=stream.len().max(1) {
                assert_eq!(parse_in_chunks(stream, chunk_size), *expected, "{stream:?} in {chunk_size}-byte chunks");
            }
        }
    }

    #[test]
    fn a_break_stops_the_chunk() {
        struct StopAtFirst(usize);
        impl EventSink for StopAtFirst {
            fn data(&mut self, _: &[u8]) {}
            fn dispatch(&mut self) -> ControlFlow<()> {
                self.0 += 1;
                ControlFlow::Break(())
            }
        }
        let mut sink = StopAtFirst(0);
        assert!(SseParser::new().feed(b"data: a\n\ndata: b\n\n", &mut sink).is_break());
        assert_eq!(sink.0, 1);
    }
}
