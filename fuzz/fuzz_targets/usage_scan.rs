//! Fuzzes the usage reader on SSE and JSON bodies of every API: no panic, bounded memory, and the
//! usage and end it reports do not depend on how the body is split into chunks, whatever its size.
#![no_main]

use ai_gateway_core::body_format::BodyFormat;
use ai_gateway_core::usage::{BodyEnd, ResponseApi, Usage, UsageReader, MAX_HEAP_BYTES};
use libfuzzer_sys::fuzz_target;

const APIS: [ResponseApi; 5] = [
    ResponseApi::ChatCompletions,
    ResponseApi::Completions,
    ResponseApi::Embeddings,
    ResponseApi::Responses,
    ResponseApi::Messages,
];

/// Below this size the body is also fed one byte at a time.
const BYTEWISE_MAX_BYTES: usize = 4 * 1024;

/// What a reader reports: usage and end before `finish`, then `finish` and the end after it.
type Observed = (Option<Usage>, Option<BodyEnd>, Option<Usage>, Option<BodyEnd>);

fn read<'a>(format: BodyFormat, api: ResponseApi, chunks: impl IntoIterator<Item = &'a [u8]>) -> Observed {
    let mut reader = UsageReader::new(format, api);
    for chunk in chunks {
        reader.feed(chunk);
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    }
    let (usage, end) = (reader.usage(), reader.end());
    let finished = reader.finish();
    (usage, end, finished, reader.end())
}

fuzz_target!(|data: &[u8]| {
    // The first four bytes choose two split points; the rest is the body.
    let Some((header, body)) = data.split_first_chunk::<4>() else { return };
    let [a0, a1, b0, b1] = *header;
    let first = usize::from(u16::from_le_bytes([a0, a1])) % (body.len() + 1);
    let second = usize::from(u16::from_le_bytes([b0, b1])) % (body.len() + 1);
    let (first, second) = (first.min(second), first.max(second));
    let (head, rest) = body.split_at(first);
    let (middle, tail) = rest.split_at(second - first);
    for format in [BodyFormat::EventStream, BodyFormat::Json] {
        for api in APIS {
            let whole = read(format, api, [body]);
            // The end never goes back to `None`.
            assert!(whole.1.is_none() || whole.3 == whole.1);
            assert_eq!(read(format, api, [head, rest]), whole, "split at {first}");
            assert_eq!(read(format, api, [head, middle, tail]), whole, "split at {first} and {second}");
            if body.len() < BYTEWISE_MAX_BYTES {
                assert_eq!(read(format, api, body.chunks(1)), whole, "1-byte chunks");
            }
        }
    }
});
