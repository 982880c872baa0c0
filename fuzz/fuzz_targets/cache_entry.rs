//! Fuzzes the cache entry codec: any slot value decodes or is a miss, and what decodes re-encodes to
//! the same bytes.
#![no_main]

use ai_gateway_core::cache::entry::{decode, Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(entry) = decode(data) else { return };
    let mut key = [0u8; 32];
    key.copy_from_slice(entry.key);
    let owned = Entry { key, stored_at_ns: entry.stored_at_ns, format: entry.format, body: entry.body.to_vec() };
    assert_eq!(owned.encode().expect("encodes"), data);
});
