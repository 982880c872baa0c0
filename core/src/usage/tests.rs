//! Usage and body ends from every supported API, as JSON and as streams, with recorded shapes of real
//! responses, checked to be the same however the body is split into chunks.

use super::json_scan::USAGE_CAPTURE_BYTES;
use super::*;

const API_KINDS: [ResponseApi; 5] = [
    ResponseApi::ChatCompletions,
    ResponseApi::Completions,
    ResponseApi::Embeddings,
    ResponseApi::Responses,
    ResponseApi::Messages,
];

/// OpenAI chat completions with `stream_options.include_usage`: `"usage":null` on every chunk, then
/// a chunk without choices that carries the usage, then `[DONE]`.
const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage is \\\"high\\\": {\\\"usage\\\": {\\\"prompt_tokens\\\": 999}} \\\\\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// OpenAI legacy completions, streamed with usage.
const COMPLETIONS_STREAM: &str = concat!(
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\" Hi\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-3.5-turbo-instruct\",\"usage\":null}\n\n",
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"model\":\"gpt-3.5-turbo-instruct\",\"usage\":null}\n\n",
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n",
    "data: [DONE]\n\n",
);

/// An OpenAI chat stream that fails part way (the error arrives as a data event).
const CHAT_STREAM_ERROR: &str = concat!(
    "data: {\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
);

/// A small chat stream, split three ways at every pair of offsets.
const SMALL_CHAT_STREAM: &str = concat!(
    "data: {\"choices\":[],\"error\":null,\"usage\":null}\n\n",
    "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
);

/// The OpenAI Responses API: usage only in `response.completed`, which repeats the whole output.
const RESPONSES_STREAM: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"error\":null,\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null,\"user\":null,\"metadata\":{}}}\n\n",
    "event: response.in_progress\n",
    "data: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.output_item.added\n",
    "data: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_67c\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi \\\"usage\\\"\"}\n\n",
    "event: response.output_text.done\n",
    "data: {\"type\":\"response.output_text.done\",\"sequence_number\":4,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"text\":\"Hi \\\"usage\\\"\"}\n\n",
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"sequence_number\":5,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"completed\",\"error\":null,\"model\":\"gpt-4.1-2025-04-14\",\"output\":[{\"id\":\"msg_67c\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi \\\"usage\\\"\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":123},\"user\":null,\"metadata\":{}}}\n\n",
);

/// A Responses stream cut short by the output limit: `response.incomplete` carries the usage.
const RESPONSES_INCOMPLETE_STREAM: &str = concat!(
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"delta\":\"Hi\"}\n\n",
    "event: response.incomplete\n",
    "data: {\"type\":\"response.incomplete\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":{\"input_tokens\":9,\"output_tokens\":16,\"total_tokens\":25}}}\n\n",
);

/// A Responses stream that fails: `response.failed`, with no usage.
const RESPONSES_FAILED_STREAM: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
    "event: response.failed\n",
    "data: {\"type\":\"response.failed\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed to generate a response.\"},\"usage\":null}}\n\n",
);

/// A Responses stream ended by an `error` event.
const RESPONSES_ERROR_STREAM: &str = concat!(
    "event: error\n",
    "data: {\"type\":\"error\",\"code\":\"ERR_SOMETHING\",\"message\":\"Something went wrong\",\"param\":null,\"sequence_number\":1}\n\n",
);

/// Anthropic Messages: usage in `message_start` (`message.usage`), the cumulative output count in
/// each `message_delta`, the end in `message_stop`.
const MESSAGES_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi {\\\"usage\\\":{\\\"output_tokens\\\":99}}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// An Anthropic stream that fails with an `error` event after `message_start`.
const MESSAGES_ERROR_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: error\n",
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
);

/// A small Anthropic stream, split three ways at every pair of offsets.
const SMALL_MESSAGES_STREAM: &str = concat!(
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// A small Responses stream, split three ways at every pair of offsets.
const SMALL_RESPONSES_STREAM: &str = concat!(
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}}\n\n",
);

const CHAT_JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"\"usage\": {\"prompt_tokens\": 999} \\\"} \\\\","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1"}"#;
const EMBEDDINGS_JSON: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
const RESPONSES_JSON: &str = r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]}],"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":6,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":11},"user":null}"#;
const MESSAGES_JSON: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage" : {"input_tokens":7,"cache_creation_input_tokens":3,"cache_read_input_tokens":0,"output_tokens":2}}"#;
const ERROR_JSON: &str = r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#;

fn usage(input_tokens: u64, output_tokens: u64) -> Option<Usage> {
    Some(Usage { input_tokens, output_tokens })
}

/// What a reader reports after a body: before and after `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observed {
    usage: Option<Usage>,
    end: Option<BodyEnd>,
    finished_usage: Option<Usage>,
    finished_end: Option<BodyEnd>,
}

fn read(format: BodyFormat, api: ResponseApi, chunks: &[&[u8]]) -> Observed {
    let mut reader = UsageReader::new(format, api);
    for chunk in chunks {
        reader.feed(chunk);
    }
    let (usage, end) = (reader.usage(), reader.end());
    let finished_usage = reader.finish();
    Observed { usage, end, finished_usage, finished_end: reader.end() }
}

fn read_stream(api: ResponseApi, chunks: &[&[u8]]) -> Observed {
    read(BodyFormat::EventStream, api, chunks)
}

/// A tiny xorshift generator, for reproducible pseudo-random chunkings.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// `body` cut into pieces of random sizes (mostly small, sometimes large).
fn random_chunks<'a>(body: &'a [u8], random: &mut XorShift) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let most = if random.below(4) == 0 { 512 } else { 9 };
        let (chunk, after) = rest.split_at((1 + random.below(most)).min(rest.len()));
        chunks.push(chunk);
        rest = after;
    }
    chunks
}

/// Asserts that every way of chunking `body` gives what feeding it whole gives, and returns that.
fn observe_every_chunking(format: BodyFormat, api: ResponseApi, body: &[u8], name: &str) -> Observed {
    let whole = read(format, api, &[body]);
    assert_eq!(read(format, api, &[b"", body, b""]), whole, "{name}: empty chunks");
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(read(format, api, &[a, b]), whole, "{name}: split at {at}");
    }
    if body.len() <= 300 {
        for first in 0..=body.len() {
            for second in first..=body.len() {
                let (a, rest) = body.split_at(first);
                let (b, c) = rest.split_at(second - first);
                assert_eq!(read(format, api, &[a, b, c]), whole, "{name}: split at {first} and {second}");
            }
        }
    } else {
        for middle in [1, 2, 6] {
            for at in 0..body.len().saturating_sub(middle) {
                let (a, rest) = body.split_at(at);
                let (b, c) = rest.split_at(middle);
                assert_eq!(read(format, api, &[a, b, c]), whole, "{name}: {middle} bytes split off at {at}");
            }
        }
    }
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(read(format, api, &bytewise), whole, "{name}: 1-byte chunks");
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ body.len() as u64);
    for round in 0..100 {
        let chunks = random_chunks(body, &mut random);
        assert_eq!(read(format, api, &chunks), whole, "{name}: random chunking {round}");
    }
    whole
}

/// The ways a stream's lines can be written: line ends, byte order mark, comments, data split over
/// several lines.
#[derive(Debug, Clone, Copy)]
struct Spelling {
    line_end: &'static str,
    byte_order_mark: bool,
    comments: bool,
    multi_line_data: bool,
}

const SPELLINGS: [Spelling; 6] = [
    Spelling { line_end: "\n", byte_order_mark: false, comments: false, multi_line_data: false },
    Spelling { line_end: "\r\n", byte_order_mark: false, comments: false, multi_line_data: false },
    Spelling { line_end: "\r", byte_order_mark: false, comments: false, multi_line_data: false },
    Spelling { line_end: "\n", byte_order_mark: true, comments: true, multi_line_data: false },
    Spelling { line_end: "\r", byte_order_mark: false, comments: false, multi_line_data: true },
    Spelling { line_end: "\r\n", byte_order_mark: true, comments: true, multi_line_data: true },
];

/// Writes a stream (given with LF line ends) the way `spelling` says.
fn spell(stream: &str, spelling: Spelling) -> Vec<u8> {
    let mut lines = Vec::new();
    for line in stream.split('\n') {
        if spelling.comments && line.starts_with("data:") {
            lines.push(": keep-alive".to_owned());
        }
        match line.strip_prefix("data: ") {
            // `,"` only occurs between JSON tokens (a quote inside a string is escaped), so a line
            // break there is whitespace in the joined data.
            Some(data) if spelling.multi_line_data => {
                lines.push(format!("data: {}", data.replace(",\"", ",\ndata:\"")))
            }
            _ => lines.push(line.to_owned()),
        }
    }
    let text = lines.join("\n").replace('\n', spelling.line_end);
    let mut bytes = if spelling.byte_order_mark { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

#[test]
fn streams_give_the_same_usage_and_end_however_they_are_chunked_and_spelled() {
    let cases = [
        ("chat", CHAT_STREAM, ResponseApi::ChatCompletions, usage(12, 34), Some(BodyEnd::Completed)),
        ("completions", COMPLETIONS_STREAM, ResponseApi::Completions, usage(5, 7), Some(BodyEnd::Completed)),
        ("embeddings as chat", SMALL_CHAT_STREAM, ResponseApi::Embeddings, usage(1, 2), Some(BodyEnd::Completed)),
        ("chat error", CHAT_STREAM_ERROR, ResponseApi::ChatCompletions, None, Some(BodyEnd::Failed)),
        ("small chat", SMALL_CHAT_STREAM, ResponseApi::ChatCompletions, usage(1, 2), Some(BodyEnd::Completed)),
        ("responses", RESPONSES_STREAM, ResponseApi::Responses, usage(36, 87), Some(BodyEnd::Completed)),
        (
            "responses incomplete",
            RESPONSES_INCOMPLETE_STREAM,
            ResponseApi::Responses,
            usage(9, 16),
            Some(BodyEnd::Completed),
        ),
        ("responses failed", RESPONSES_FAILED_STREAM, ResponseApi::Responses, None, Some(BodyEnd::Failed)),
        ("responses error", RESPONSES_ERROR_STREAM, ResponseApi::Responses, None, Some(BodyEnd::Failed)),
        ("small responses", SMALL_RESPONSES_STREAM, ResponseApi::Responses, usage(4, 2), Some(BodyEnd::Completed)),
        ("messages", MESSAGES_STREAM, ResponseApi::Messages, usage(30, 15), Some(BodyEnd::Completed)),
        ("messages error", MESSAGES_ERROR_STREAM, ResponseApi::Messages, usage(25, 1), Some(BodyEnd::Failed)),
        ("small messages", SMALL_MESSAGES_STREAM, ResponseApi::Messages, usage(0, 3), Some(BodyEnd::Completed)),
    ];
    for (name, stream, api, expected_usage, expected_end) in cases {
        for spelling in SPELLINGS {
            let body = spell(stream, spelling);
            let name = format!("{name} {spelling:?}");
            let observed = observe_every_chunking(BodyFormat::EventStream, api, &body, &name);
            let expected = Observed {
                usage: expected_usage,
                end: expected_end,
                finished_usage: expected_usage,
                finished_end: expected_end,
            };
            assert_eq!(observed, expected, "{name}");
        }
    }
}

#[test]
fn json_bodies_give_the_same_usage_and_end_however_they_are_chunked() {
    let nested_after = r#"{"choices":[{"message":{"content":"x","usage":{"prompt_tokens":999}}}],"usage":{"prompt_tokens":3,"completion_tokens":4},"extra":{"usage":{"prompt_tokens":998,"completion_tokens":997}},"x":[{"usage":{"prompt_tokens":996}}]}"#;
    let nested_before = r#"{"response":{"usage":{"input_tokens":999,"output_tokens":999}},"message":{"usage":{"input_tokens":998}},"usage":{"input_tokens":5,"output_tokens":6}}"#;
    let cases: &[(&str, &str, Option<Usage>, Option<BodyEnd>)] = &[
        ("chat", CHAT_JSON, usage(11, 22), Some(BodyEnd::Completed)),
        ("embeddings", EMBEDDINGS_JSON, usage(8, 0), Some(BodyEnd::Completed)),
        ("responses", RESPONSES_JSON, usage(5, 6), Some(BodyEnd::Completed)),
        ("messages", MESSAGES_JSON, usage(10, 2), Some(BodyEnd::Completed)),
        ("error", ERROR_JSON, None, Some(BodyEnd::Completed)),
        ("nested usage after the top-level one", nested_after, usage(3, 4), Some(BodyEnd::Completed)),
        ("nested usage before the top-level one", nested_before, usage(5, 6), Some(BodyEnd::Completed)),
        ("null usage", r#"{"usage":null}"#, None, Some(BodyEnd::Completed)),
        ("usage as an array", r#"{"usage":[1,2,3,4,5]}"#, None, Some(BodyEnd::Completed)),
        ("usage of the wrong types", r#"{"usage":{"prompt_tokens":"1"}}"#, None, Some(BodyEnd::Completed)),
        ("escaped key", r#"{"us\u0061ge":{"prompt_tokens":1}}"#, None, Some(BodyEnd::Completed)),
        ("cut", r#"{"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":["#, usage(1, 2), None),
        ("cut in the usage", r#"{"usage":{"prompt_tokens":1,"completion_tokens":2"#, None, None),
        ("not json", "not json", None, None),
        ("empty", "", None, None),
        ("top-level array", r#"[{"usage":{"prompt_tokens":1}}]"#, None, Some(BodyEnd::Completed)),
    ];
    for (name, body, expected_usage, expected_end) in cases {
        let observed = observe_every_chunking(BodyFormat::Json, ResponseApi::ChatCompletions, body.as_bytes(), name);
        let expected = Observed {
            usage: *expected_usage,
            end: *expected_end,
            finished_usage: *expected_usage,
            finished_end: *expected_end,
        };
        assert_eq!(observed, expected, "{name}");
        // A JSON body reads the same whatever its API.
        for api in API_KINDS {
            assert_eq!(read(BodyFormat::Json, api, &[body.as_bytes()]), expected, "{name} as {api:?}");
        }
    }
}

#[test]
fn a_top_level_usage_first_in_a_large_json_body_counts() {
    let filler = "x".repeat(200 * 1024);
    let body = format!(
        r#"{{"usage":{{"prompt_tokens":7,"completion_tokens":8}},"choices":[{{"message":{{"content":"{filler}","usage":{{"prompt_tokens":1}}}}}}]}}"#
    );
    let mut reader = UsageReader::new(BodyFormat::Json, ResponseApi::ChatCompletions);
    for chunk in body.as_bytes().chunks(16 * 1024) {
        reader.feed(chunk);
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    }
    assert_eq!(reader.end(), Some(BodyEnd::Completed));
    assert_eq!(reader.finish(), usage(7, 8));
}

#[test]
fn large_json_bodies_keep_no_more_than_the_bound() {
    let mut reader = UsageReader::new(BodyFormat::Json, ResponseApi::Embeddings);
    reader.feed(b"{\"data\":[");
    for _ in 0..1000 {
        reader.feed(&[b'1', b','].repeat(1000));
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    }
    reader.feed(b"1],\"usage\":{\"prompt_tokens\":1000,\"total_tokens\":1000}}");
    assert_eq!(reader.end(), Some(BodyEnd::Completed));
    assert_eq!(reader.finish(), usage(1000, 0));
}

/// A `response.completed` event whose output text is 1 MiB, usage at the end of `response`.
fn huge_response_completed() -> Vec<u8> {
    let text = "All work and no play. ".repeat(1024 * 1024 / 22 + 1);
    let mut stream = String::from(RESPONSES_STREAM.split("event: response.completed").next().unwrap_or_default());
    stream.push_str("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,");
    stream.push_str("\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[{\"type\":\"message\",");
    stream.push_str("\"content\":[{\"type\":\"output_text\",\"text\":\"");
    stream.push_str(&text);
    stream.push_str("\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":17,\"output_tokens\":262144}}}\n\n");
    stream.into_bytes()
}

#[test]
fn a_megabyte_event_is_read_in_pieces_with_bounded_memory() {
    let stream = huge_response_completed();
    assert!(stream.len() > 1024 * 1024);
    let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::Responses);
    for chunk in stream.chunks(16 * 1024) {
        assert_eq!(reader.usage(), None);
        assert_eq!(reader.end(), None);
        reader.feed(chunk);
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES, "{}", reader.heap_capacity());
    }
    assert_eq!(reader.usage(), usage(17, 262_144));
    assert_eq!(reader.end(), Some(BodyEnd::Completed));
    assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    assert_eq!(reader.finish(), usage(17, 262_144));
    // The same in random pieces, and with CRLF line ends.
    let mut random = XorShift(7);
    let crlf = String::from_utf8_lossy(&stream).replace('\n', "\r\n").into_bytes();
    for body in [&stream, &crlf] {
        let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::Responses);
        let mut rest = &body[..];
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at((1 + random.below(40_000)).min(rest.len()));
            reader.feed(chunk);
            rest = after;
        }
        assert_eq!((reader.usage(), reader.end()), (usage(17, 262_144), Some(BodyEnd::Completed)));
    }
}

#[test]
fn huge_content_lines_are_read_with_bounded_memory() {
    let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::ChatCompletions);
    reader.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"");
    for _ in 0..100 {
        reader.feed(&[b'x'; 4096]);
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    }
    reader.feed(b"\"}}],\"usage\":null}\n\ndata: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n");
    assert_eq!(reader.finish(), usage(4, 5));
}

#[test]
fn a_usage_object_over_the_bound_is_ignored_not_misread() {
    let padding = "p".repeat(USAGE_CAPTURE_BYTES);
    let big_usage = format!(r#"{{"prompt_tokens":999,"completion_tokens":999,"padding":"{padding}"}}"#);
    let json = format!(r#"{{"usage":{big_usage}}}"#);
    let whole = read(BodyFormat::Json, ResponseApi::ChatCompletions, &[json.as_bytes()]);
    assert_eq!((whole.finished_usage, whole.finished_end), (None, Some(BodyEnd::Completed)));
    let mut random = XorShift(11);
    for _ in 0..20 {
        let chunks = random_chunks(json.as_bytes(), &mut random);
        assert_eq!(read(BodyFormat::Json, ResponseApi::ChatCompletions, &chunks), whole);
    }

    let stream = format!(
        "data: {{\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":2}}}}\n\ndata: {{\"usage\":{big_usage}}}\n\ndata: [DONE]\n\n"
    );
    let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::ChatCompletions);
    for chunk in stream.as_bytes().chunks(1000) {
        reader.feed(chunk);
        assert!(reader.heap_capacity() <= MAX_HEAP_BYTES);
    }
    assert_eq!((reader.finish(), reader.end()), (usage(1, 2), Some(BodyEnd::Completed)));

    // Just under the bound still counts.
    let fitting = format!(r#"{{"prompt_tokens":3,"padding":"{}"}}"#, "p".repeat(USAGE_CAPTURE_BYTES - 40));
    let mut reader = UsageReader::new(BodyFormat::Json, ResponseApi::ChatCompletions);
    reader.feed(format!(r#"{{"usage":{fitting}}}"#).as_bytes());
    assert_eq!(reader.finish(), usage(3, 0));
}

#[test]
fn the_done_marker_is_exactly_done() {
    let cases: &[(&[u8], Option<BodyEnd>)] = &[
        (b"data: [DONE]\n\n", Some(BodyEnd::Completed)),
        (b"data:[DONE]\n\n", Some(BodyEnd::Completed)),
        (b"data: [DONE]\r\n\r\n", Some(BodyEnd::Completed)),
        (b"event: done\ndata: [DONE]\n\n", Some(BodyEnd::Completed)),
        (b"data: [DONE] \n\n", None),
        (b"data: [DONE]x\n\n", None),
        (b"data:  [DONE]\n\n", None),
        (b"data: [DONE\n\n", None),
        (b"data: [DONE]\ndata: \n\n", None),
        (b"data: [done]\n\n", None),
        (b"data: \"[DONE]\"\n\n", None),
        (b"event: [DONE]\n\n", None),
        (b": [DONE]\n\n", None),
    ];
    for (stream, expected) in cases {
        let observed = observe_every_chunking(BodyFormat::EventStream, ResponseApi::ChatCompletions, stream, "done");
        assert_eq!(observed.end, *expected, "{}", String::from_utf8_lossy(stream));
        // The other APIs end by their events' `type`, not by `[DONE]`.
        assert_eq!(read_stream(ResponseApi::Messages, &[stream]).end, None);
        assert_eq!(read_stream(ResponseApi::Responses, &[stream]).end, None);
    }
}

#[test]
fn a_stream_cut_before_its_end_marker_has_no_end() {
    let cases = [
        (CHAT_STREAM, ResponseApi::ChatCompletions, "data: [DONE]", usage(12, 34)),
        (RESPONSES_STREAM, ResponseApi::Responses, "event: response.completed", None),
        (MESSAGES_STREAM, ResponseApi::Messages, "event: message_stop", usage(30, 15)),
        (MESSAGES_STREAM, ResponseApi::Messages, "event: message_delta", usage(30, 1)),
    ];
    for (stream, api, cut_before, expected_usage) in cases {
        let cut = stream.find(cut_before).unwrap();
        let observed = read_stream(api, &[&stream.as_bytes()[..cut]]);
        assert_eq!(observed.finished_end, None, "{cut_before}");
        assert_eq!(observed.finished_usage, expected_usage, "{cut_before}");
    }
    // Cut inside the last event, at every byte before its end: half an event counts for nothing,
    // even when `finish` dispatches what is there.
    let last_event = RESPONSES_STREAM.find("event: response.completed").unwrap();
    let end_of_json = RESPONSES_STREAM.len() - "}\n\n".len();
    for cut in last_event..end_of_json {
        let observed = read_stream(ResponseApi::Responses, &[&RESPONSES_STREAM.as_bytes()[..cut]]);
        assert_eq!((observed.finished_usage, observed.finished_end), (None, None), "cut at {cut}");
    }
}

#[test]
fn finish_dispatches_a_last_event_without_its_blank_line() {
    let cases: &[(ResponseApi, &str, Option<Usage>, Option<BodyEnd>)] = &[
        (
            ResponseApi::ChatCompletions,
            "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
            usage(1, 2),
            None,
        ),
        (ResponseApi::ChatCompletions, "data: {\"usage\":{\"prompt_tokens\":1}}\r\n", usage(1, 0), None),
        (
            ResponseApi::ChatCompletions,
            "data: {\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]",
            usage(1, 0),
            Some(BodyEnd::Completed),
        ),
        (ResponseApi::Messages, "data: {\"type\":\"message_stop\"}\r", None, Some(BodyEnd::Completed)),
    ];
    for (api, stream, expected_usage, expected_end) in cases {
        let observed = observe_every_chunking(BodyFormat::EventStream, *api, stream.as_bytes(), stream);
        assert_eq!(observed.end, None);
        assert_eq!((observed.finished_usage, observed.finished_end), (*expected_usage, *expected_end));
    }
}

#[test]
fn an_event_counts_only_once_dispatched() {
    let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::Messages);
    reader.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n");
    assert_eq!(reader.usage(), None);
    reader.feed(b"\r\n");
    assert_eq!(reader.usage(), usage(0, 3));
    reader.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}");
    assert_eq!(reader.end(), None);
    reader.feed(b"\n");
    assert_eq!(reader.end(), None);
    reader.feed(b"\n");
    assert_eq!(reader.end(), Some(BodyEnd::Completed));
}

#[test]
fn nothing_changes_after_the_end() {
    let after_end = b"data: {\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9}}\n\n";
    let cases: &[(BodyFormat, ResponseApi, &[u8], BodyEnd)] = &[
        (BodyFormat::EventStream, ResponseApi::ChatCompletions, b"data: [DONE]\n\n", BodyEnd::Completed),
        (BodyFormat::EventStream, ResponseApi::ChatCompletions, b"data: {\"error\":{}}\n\n", BodyEnd::Failed),
        (BodyFormat::EventStream, ResponseApi::Messages, b"data: {\"type\":\"error\"}\n\n", BodyEnd::Failed),
        (BodyFormat::Json, ResponseApi::ChatCompletions, b"{\"usage\":null}", BodyEnd::Completed),
    ];
    for (format, api, body, end) in cases {
        let mut one_chunk = body.to_vec();
        one_chunk.extend_from_slice(after_end);
        one_chunk.extend_from_slice(b"data: [DONE]\n\n{\"usage\":{\"prompt_tokens\":9}}");
        let observed = read(*format, *api, &[&one_chunk]);
        assert_eq!(observed, Observed { usage: None, end: Some(*end), finished_usage: None, finished_end: Some(*end) });
        let observed = read(*format, *api, &[body, after_end, b"data: {\"type\":\"message_stop\"}\n\n"]);
        assert_eq!(observed, Observed { usage: None, end: Some(*end), finished_usage: None, finished_end: Some(*end) });
    }
}

#[test]
fn the_end_is_what_the_data_says_whatever_the_event_line_says() {
    let cases: &[(ResponseApi, &[u8], Option<BodyEnd>)] = &[
        (ResponseApi::Messages, b"event: message_stop\ndata: {\"type\":\"ping\"}\n\n", None),
        (ResponseApi::Messages, b"event: whatever\ndata: {\"type\":\"message_stop\"}\n\n", Some(BodyEnd::Completed)),
        (ResponseApi::Messages, b"data: {\"type\":\"message_stop\"}\n\n", Some(BodyEnd::Completed)),
        (ResponseApi::Messages, b"event: error\ndata: {\"type\":\"ping\"}\n\n", None),
        (ResponseApi::Messages, b"data: {\"delta\":{\"type\":\"message_stop\"}}\n\n", None),
        (ResponseApi::Messages, b"data: {\"type\":\"message_stop\"} x\n\n", None),
        (ResponseApi::Messages, b"data: {\"type\":\"message_stop\"\n\n", None),
        (
            ResponseApi::Responses,
            b"event: response.completed\ndata: {\"type\":\"response.output_text.delta\"}\n\n",
            None,
        ),
        (ResponseApi::Responses, b"data: {\"type\":\"response.completed\"}\n\n", Some(BodyEnd::Completed)),
        (ResponseApi::Responses, b"data: {\"type\":\"response.failed\"}\n\n", Some(BodyEnd::Failed)),
        (ResponseApi::Responses, b"data: {\"response\":{\"type\":\"response.completed\"}}\n\n", None),
        (ResponseApi::ChatCompletions, b"event: error\ndata: {\"choices\":[]}\n\n", None),
        (ResponseApi::ChatCompletions, b"data: {\"choices\":[],\"error\":null}\n\n", None),
        (ResponseApi::ChatCompletions, b"data: {\"choices\":[{\"error\":{}}]}\n\n", None),
        (ResponseApi::ChatCompletions, b"data: {\"error\":\"overloaded\"}\n\n", Some(BodyEnd::Failed)),
    ];
    for (api, stream, expected) in cases {
        let observed = observe_every_chunking(BodyFormat::EventStream, *api, stream, "end");
        assert_eq!(observed.end, *expected, "{api:?} {}", String::from_utf8_lossy(stream));
    }
}

#[test]
fn usage_counts_only_at_the_paths_of_its_api() {
    let cases: &[(ResponseApi, &str, Option<Usage>)] = &[
        (ResponseApi::ChatCompletions, r#"{"usage":{"prompt_tokens":1}}"#, usage(1, 0)),
        (ResponseApi::ChatCompletions, "{\"usage\" : \t {\"prompt_tokens\":2}}", usage(2, 0)),
        (ResponseApi::ChatCompletions, r#"{"usage":null}"#, None),
        (ResponseApi::ChatCompletions, r#"{"usage":{"x":1}}"#, None),
        (ResponseApi::ChatCompletions, r#"{"content":"usage: {"}"#, None),
        (ResponseApi::ChatCompletions, r#"{"content":"\"usage\": {\"prompt_tokens\": 3}"}"#, None),
        (ResponseApi::ChatCompletions, r#"{"choices":[{"usage":{"prompt_tokens":3}}]}"#, None),
        (ResponseApi::ChatCompletions, r#"{"response":{"usage":{"input_tokens":3}}}"#, None),
        (ResponseApi::ChatCompletions, r#""usage""#, None),
        (
            ResponseApi::Responses,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":3}}}"#,
            usage(3, 0),
        ),
        (ResponseApi::Responses, r#"{"usage":{"input_tokens":3}}"#, None),
        (ResponseApi::Responses, r#"{"item":{"usage":{"input_tokens":3}}}"#, None),
        (ResponseApi::Responses, r#"{"response":{"output":[{"usage":{"input_tokens":3}}]}}"#, None),
        (ResponseApi::Messages, r#"{"usage":null,"message":{"usage":{"input_tokens":3}}}"#, usage(3, 0)),
        (ResponseApi::Messages, r#"{"usage":{"output_tokens":4}}"#, usage(0, 4)),
        (ResponseApi::Messages, r#"{"response":{"usage":{"input_tokens":3}}}"#, None),
        (ResponseApi::Messages, r#"{"message":{"content":[{"usage":{"input_tokens":3}}]}}"#, None),
    ];
    for (api, data, expected) in cases {
        let stream = format!("data: {data}\n\n");
        let observed = observe_every_chunking(BodyFormat::EventStream, *api, stream.as_bytes(), data);
        assert_eq!(observed.finished_usage, *expected, "{api:?} {data}");
    }
}

#[test]
fn anthropic_cumulative_output_is_not_summed() {
    assert_eq!(read_stream(ResponseApi::Messages, &[MESSAGES_STREAM.as_bytes()]).usage, usage(30, 15));
}

#[test]
fn streams_without_usage_or_with_broken_events() {
    let cases: &[(&[u8], Option<Usage>)] = &[
        (b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n", None),
        (b"data: {\"usage\": not json\n\ndata: {\"usage\":{\"prompt_tokens\":3}}\n\n", usage(3, 0)),
        (b"data: {\"usage\":{\"prompt_tokens\":1}} {\"usage\":{\"prompt_tokens\":2}}\n\n", None),
        (b"data: {\"usage\":{\"prompt_tokens\":1}}\ndata: {}\n\n", None),
        (b"data: {\"usage\":{\"prompt_tokens\":-1}}\n\n", None),
        (b"data: {\"usage\":{\"prompt_tokens\":1.5}}\n\n", None),
        (
            b"data: {\"usage\":{\"prompt_tokens\":18446744073709551615,\"cache_read_input_tokens\":5}}\n\n",
            usage(u64::MAX, 0),
        ),
        (b"data: {\"usage\":{\"prompt_tokens\":5,\"total_tokens\":3}}\n\n", usage(5, 0)),
        (b"data: \xff\xfe{\"usage\":{\"prompt_tokens\":1}}\n\n", None),
        (b"data: {\"usage\":{\"prompt_tokens\":1}}}}]]\n\n", None),
        (b"data: {\"a\":\"\\\\\",\"usage\":{\"prompt_tokens\":1}}\n\n", usage(1, 0)),
        (b"data: {\"a\":\"\\\\\\\"\",\"usage\":{\"prompt_tokens\":1}}\n\n", usage(1, 0)),
        (b"data: {\"a\":\"\\\",\\\"usage\\\":{\\\"prompt_tokens\\\":1}}\"}\n\n", None),
    ];
    for (stream, expected) in cases {
        let observed = observe_every_chunking(BodyFormat::EventStream, ResponseApi::ChatCompletions, stream, "broken");
        assert_eq!(observed.finished_usage, *expected, "{}", String::from_utf8_lossy(stream));
    }
}

#[test]
fn random_input_never_panics_and_does_not_depend_on_chunking() {
    const PIECES: &[&[u8]] = &[
        b"data:",
        b"data: ",
        b"event: x",
        b":",
        b"\n",
        b"\r",
        b"\r\n",
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\\",
        b",",
        b" ",
        b"\"usage\":",
        b"\"response\":",
        b"\"message\":",
        b"\"type\":",
        b"\"error\":",
        b"\"message_stop\"",
        b"\"response.completed\"",
        b"{\"prompt_tokens\":1,\"output_tokens\":2}",
        b"null",
        b"[DONE]",
        b"\xEF\xBB\xBF",
        b"\\u0022",
        b"x",
        b"7",
    ];
    let mut random = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..300 {
        let mut body = Vec::new();
        for _ in 0..random.below(60) {
            body.extend_from_slice(PIECES[random.below(PIECES.len())]);
        }
        for format in [BodyFormat::EventStream, BodyFormat::Json] {
            for api in API_KINDS {
                let whole = read(format, api, &[&body]);
                let bytewise: Vec<&[u8]> = body.chunks(1).collect();
                assert_eq!(read(format, api, &bytewise), whole, "{}", String::from_utf8_lossy(&body));
                for _ in 0..5 {
                    let chunks = random_chunks(&body, &mut random);
                    assert_eq!(read(format, api, &chunks), whole, "{}", String::from_utf8_lossy(&body));
                }
            }
        }
    }
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
