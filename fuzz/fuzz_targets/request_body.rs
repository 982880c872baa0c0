//! Fuzzes body field extraction and the in-place rewrite: whatever is accepted and is a JSON document,
//! the rewritten body is still one, whose `model` is the new one and which asks for streamed usage.
#![no_main]

use ai_gateway_core::request_body::{apply, include_usage, read_fields, set_model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = read_fields(data) else { return };
    let mut edits = vec![set_model(&fields, "rewritten-\"model\"")];
    edits.extend(include_usage(data, &fields));
    let rewritten = apply(data, edits);
    // Lone surrogate escapes (`"\ud800"`) in skipped strings are let through for the provider to
    // judge; a document serde_json reads whole must stay readable after the rewrite.
    if serde_json::from_slice::<serde_json::Value>(data).is_err() {
        return;
    }
    let value: serde_json::Value = serde_json::from_slice(&rewritten).expect("a rewritten body is JSON");
    assert_eq!(value["model"], "rewritten-\"model\"");
    assert_eq!(value["stream_options"]["include_usage"], true);
    // And it reads back the same way.
    assert_eq!(read_fields(&rewritten).expect("rewritten body reads").model, "rewritten-\"model\"");
});
