//! Fuzzes the usage reader on SSE and JSON bodies: no panic, bounded memory, and the result does not
//! depend on how the body is split into chunks.
#![no_main]

use ai_gateway::usage::{BodyFormat, UsageReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    for format in [BodyFormat::EventStream, BodyFormat::Json] {
        let mut whole = UsageReader::new(format);
        whole.feed(body);
        let expected = whole.finish();
        let at = usize::from(split).min(body.len());
        let (a, b) = body.split_at(at);
        let mut split_reader = UsageReader::new(format);
        split_reader.feed(a);
        split_reader.feed(b);
        if body.len() < 60 * 1024 {
            // Below the carry-over and tail bounds, chunking must not change the answer.
            assert_eq!(split_reader.finish(), expected);
        } else {
            let _ = split_reader.finish();
        }
    }
});
