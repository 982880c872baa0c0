//! Usage extraction from every supported format, streams split at every byte offset.

use super::*;

const OPENAI_CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage is \\\"high\\\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\r\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n\r\n",
    "event: content_block_delta\r\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\r\n\r\n",
    "event: message_delta\r\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\r\n\r\n",
    "event: message_delta\r\n",
    "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}\r\n\r\n",
    "event: message_stop\r\n",
    "data: {\"type\":\"message_stop\"}\r\n\r\n",
);

const RESPONSES_STREAM: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"total_tokens\":12}}}\n\n",
);

fn read_stream(chunks: &[&[u8]]) -> Option<Usage> {
    let mut reader = UsageReader::new(BodyFormat::EventStream);
    for chunk in chunks {
        reader.feed(chunk);
    }
    reader.finish()
}

fn usage(input_tokens: u64, output_tokens: u64) -> Option<Usage> {
    Some(Usage { input_tokens, output_tokens })
}

#[test]
fn streams_give_the_right_counts_when_split_at_every_byte_offset() {
    let cases =
        [(OPENAI_CHAT_STREAM, usage(12, 34)), (ANTHROPIC_STREAM, usage(30, 15)), (RESPONSES_STREAM, usage(9, 3))];
    for (stream, expected) in cases {
        let bytes = stream.as_bytes();
        assert_eq!(read_stream(&[bytes]), expected);
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(read_stream(&[a, b]), expected, "split at {split}");
        }
        for split in 0..bytes.len().saturating_sub(7) {
            let (a, rest) = bytes.split_at(split);
            let (b, c) = rest.split_at(7);
            assert_eq!(read_stream(&[a, b, c]), expected, "three-way split at {split}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_stream(&bytewise), expected);
    }
}

#[test]
fn anthropic_cumulative_output_is_not_summed() {
    assert_eq!(read_stream(&[ANTHROPIC_STREAM.as_bytes()]).unwrap().output_tokens, 15);
}

#[test]
fn streams_without_usage_or_cut_short_report_what_they_saw() {
    assert_eq!(read_stream(&[b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"]), None);
    let cut = &ANTHROPIC_STREAM.as_bytes()[..ANTHROPIC_STREAM.find("event: message_delta").unwrap()];
    assert_eq!(read_stream(&[cut]), usage(30, 1));
    assert_eq!(read_stream(&[b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}"]), usage(1, 2));
    assert_eq!(
        read_stream(&[b"data: {\"usage\": not json\n\n", b"data: {\"usage\":{\"prompt_tokens\":3}}\n\n"]),
        usage(3, 0)
    );
}

#[test]
fn only_usage_objects_are_parsed() {
    let cases: &[(&[u8], bool)] = &[
        (b"{\"usage\":{\"prompt_tokens\":1}}", true),
        (b"{\"usage\" : \n {\"x\":1}}", true),
        (b"{\"usage\":null}", false),
        (b"{\"content\":\"usage: {\"}", false),
        (b"{\"usage\":null,\"message\":{\"usage\":{}}}", true),
        (b"\"usage\"", false),
    ];
    for (text, expected) in cases {
        assert_eq!(mentions_usage_object(text), *expected, "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn huge_lines_are_skipped_with_bounded_memory() {
    let mut reader = UsageReader::new(BodyFormat::EventStream);
    reader.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"");
    for _ in 0..100 {
        reader.feed(&[b'x'; 4096]);
        assert!(reader.buffer.len() <= MAX_CARRY_BYTES);
    }
    reader.feed(b"\"}}]}\n\ndata: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n");
    assert_eq!(reader.finish(), usage(4, 5));
}

#[test]
fn json_bodies_of_every_format() {
    let cases: &[(&str, Option<Usage>)] = &[
        (
            r#"{"id":"c","choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 999}"}}],"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33}}"#,
            usage(11, 22),
        ),
        (r#"{"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}"#, usage(8, 0)),
        (
            r#"{"id":"r","object":"response","usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11},"user":null}"#,
            usage(5, 6),
        ),
        (
            r#"{"id":"m","type":"message","usage" : {"input_tokens":7,"cache_creation_input_tokens":3,"output_tokens":2}}"#,
            usage(10, 2),
        ),
        (r#"{"error":{"message":"bad"}}"#, None),
        (r#"{"usage":null}"#, None),
        ("not json", None),
    ];
    for (body, expected) in cases {
        let mut reader = UsageReader::new(BodyFormat::Json);
        for chunk in body.as_bytes().chunks(5) {
            reader.feed(chunk);
        }
        assert_eq!(reader.finish(), *expected, "{body}");
    }
}

#[test]
fn large_json_bodies_keep_only_a_bounded_tail() {
    let mut reader = UsageReader::new(BodyFormat::Json);
    reader.feed(b"{\"data\":[");
    for _ in 0..1000 {
        reader.feed(&[b'1', b','].repeat(1000));
        assert!(reader.buffer.len() <= JSON_TAIL_BYTES);
    }
    reader.feed(b"1],\"usage\":{\"prompt_tokens\":1000,\"total_tokens\":1000}}");
    assert_eq!(reader.finish(), usage(1000, 0));
}

#[test]
fn content_types() {
    let cases = [
        ("text/event-stream", Some(BodyFormat::EventStream)),
        ("text/event-stream; charset=utf-8", Some(BodyFormat::EventStream)),
        ("application/json", Some(BodyFormat::Json)),
        ("Application/JSON; charset=utf-8", Some(BodyFormat::Json)),
        ("text/plain", None),
    ];
    for (content_type, expected) in cases {
        assert_eq!(BodyFormat::from_content_type(content_type), expected, "{content_type}");
    }
}
