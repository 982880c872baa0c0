//! Token reservations: what a request holds against its key's token limits from admission until its
//! real usage is known, and what it is finally charged.
//!
//! At admission a request reserves an estimate: its prompt (body bytes / [`PROMPT_BYTES_PER_TOKEN`])
//! plus its declared output cap times `n` ([`DEFAULT_OUTPUT_ESTIMATE`] when it declares none). When
//! the request is over, the reservation is settled to what [`charge`] says, so concurrent requests can
//! never push real usage past a limit by more than they declared.

use super::{LimitStatus, Refusal};
use crate::config::Key;
use crate::endpoint::ModelEndpoint;
use crate::ports::SharedStore;
use crate::request_body::OutputCaps;
use crate::usage::Usage;

/// Output tokens reserved for a request that declares no maximum (`max_tokens` and the like).
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;
/// Request-body bytes per prompt token assumed when reserving: an overestimate for most text
/// (English averages about 4 bytes per token), so the reservation covers the real prompt.
pub const PROMPT_BYTES_PER_TOKEN: u64 = 3;

/// What a request is expected to use, before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The whole reservation: prompt plus output.
    pub reserved: u64,
    /// The prompt's part, charged when the provider fails without generating anything.
    pub prompt: u64,
}

/// What a request declares about its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    pub body_bytes: usize,
    /// The output cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`).
    pub max_output_tokens: Option<u64>,
    /// `n`, 1 when absent.
    pub choices: u64,
    /// False for embeddings, which generate no output tokens.
    pub generates_output: bool,
}

/// What a request to `endpoint` declares, from its body: only the cap field of that endpoint's API
/// counts (a `max_output_tokens` sent to chat completions caps nothing there), and `n` only where
/// the API has it.
pub fn declared(endpoint: ModelEndpoint, caps: OutputCaps, n: u64, body_bytes: usize) -> Declared {
    let (max_output_tokens, choices) = match endpoint {
        ModelEndpoint::ChatCompletions => (caps.max_completion_tokens.or(caps.max_tokens), n),
        ModelEndpoint::Completions => (caps.max_tokens, n),
        ModelEndpoint::Responses => (caps.max_output_tokens, 1),
        ModelEndpoint::Messages => (caps.max_tokens, 1),
        ModelEndpoint::Embeddings => (None, 1),
    };
    Declared { body_bytes, max_output_tokens, choices, generates_output: endpoint != ModelEndpoint::Embeddings }
}

/// The prompt part of an estimate, from the body's size alone.
pub fn prompt_estimate(body_bytes: usize) -> u64 {
    u64::try_from(body_bytes).unwrap_or(u64::MAX).div_ceil(PROMPT_BYTES_PER_TOKEN)
}

pub fn estimate(declared: Declared) -> Estimate {
    let prompt = prompt_estimate(declared.body_bytes);
    let output = match declared.generates_output {
        true => declared.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE).saturating_mul(declared.choices),
        false => 0,
    };
    Estimate { reserved: prompt.saturating_add(output), prompt }
}

/// Tokens held against a key's token limits until the request's real usage is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub key_index: usize,
    pub estimate: Estimate,
}

/// Reserves `estimate` from every token limit of the key (all or nothing). `Ok(None)`: the key has
/// no token limit, nothing is held. The status is the tightest token limit's, for the headers.
pub fn reserve(
    store: &dyn SharedStore,
    key_index: usize,
    key: &Key,
    estimate: Estimate,
    now_ns: u64,
) -> Result<Option<(Reservation, Option<LimitStatus>)>, Refusal> {
    if key.token_limits().next().is_none() {
        return Ok(None);
    }
    let status = super::take_all(store, key.token_limits(), estimate.reserved, now_ns)?;
    Ok(Some((Reservation { key_index, estimate }, status)))
}

/// How a forwarded request's response ended, judged by its protocol (see `usage::BodyEnd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEnd {
    /// The protocol's end marker was seen (or, for a body the gateway cannot read, the transport
    /// ended).
    Complete,
    /// The protocol said the answer failed (an `error` event, `response.failed`).
    Failed,
    /// No end was seen: the client or the provider hung up, or the body was cut.
    Cut,
}

/// What a finished request is charged, in tokens:
/// - a 2xx response that ended by its protocol (complete, or failed by an error event) and reported
///   usage: the usage;
/// - an upstream error (not 2xx), or a failed stream that reported no usage: the prompt estimate;
/// - anything else (client abort, stream cut short, no usage reported): the whole reservation, or
///   the usage reported before the cut if that is more (Anthropic streams report the input tokens
///   first: a small body can have a large input, `file_id` documents or image URLs).
pub fn charge(reservation: &Reservation, status: Option<u16>, end: ResponseEnd, usage: Option<Usage>) -> u64 {
    let Estimate { reserved, prompt } = reservation.estimate;
    let prompt = prompt.min(reserved);
    match (status, end, usage) {
        (Some(200..=299), ResponseEnd::Complete | ResponseEnd::Failed, Some(usage)) => usage.total(),
        (Some(200..=299), ResponseEnd::Failed, None) => prompt,
        (Some(status), _, _) if !(200..=299).contains(&status) => prompt,
        _ => reserved.max(usage.map_or(0, |usage| usage.total())),
    }
}

/// Settles a reservation to `charged` tokens on every token limit of its key. Best effort: a failed
/// settlement leaves the reservation in place, which refills with time.
pub fn settle(store: &dyn SharedStore, key: &Key, reservation: &Reservation, charged: u64, now_ns: u64) {
    let delta = i64::try_from(i128::from(charged) - i128::from(reservation.estimate.reserved)).unwrap_or(0);
    for limit in key.token_limits() {
        let _ = super::adjust(store, limit, delta, now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(reserved: u64, prompt: u64) -> Reservation {
        Reservation { key_index: 0, estimate: Estimate { reserved, prompt } }
    }

    #[test]
    fn estimates_cover_prompt_and_declared_output() {
        let declared = Declared { body_bytes: 10, max_output_tokens: Some(100), choices: 2, generates_output: true };
        assert_eq!(estimate(declared), Estimate { reserved: 4 + 200, prompt: 4 });
        let none_declared = Declared { max_output_tokens: None, choices: 1, ..declared };
        assert_eq!(estimate(none_declared).reserved, 4 + DEFAULT_OUTPUT_ESTIMATE);
        let embeddings = Declared { generates_output: false, ..declared };
        assert_eq!(estimate(embeddings), Estimate { reserved: 4, prompt: 4 });
        let huge = Declared { max_output_tokens: Some(u64::MAX), choices: 3, ..declared };
        assert_eq!(estimate(huge).reserved, u64::MAX);
    }

    #[test]
    fn only_the_endpoints_own_cap_field_counts() {
        let caps = OutputCaps { max_tokens: Some(10), max_completion_tokens: Some(20), max_output_tokens: Some(30) };
        let only = |field: usize| OutputCaps {
            max_tokens: (field == 0).then_some(10),
            max_completion_tokens: (field == 1).then_some(20),
            max_output_tokens: (field == 2).then_some(30),
        };
        let cases = [
            (ModelEndpoint::ChatCompletions, caps, Some(20), 3),
            (ModelEndpoint::ChatCompletions, only(0), Some(10), 3),
            (ModelEndpoint::ChatCompletions, only(2), None, 3),
            (ModelEndpoint::Completions, only(1), None, 3),
            (ModelEndpoint::Responses, caps, Some(30), 1),
            (ModelEndpoint::Responses, only(0), None, 1),
            (ModelEndpoint::Messages, caps, Some(10), 1),
            (ModelEndpoint::Messages, only(2), None, 1),
            (ModelEndpoint::Embeddings, caps, None, 1),
        ];
        for (endpoint, caps, cap, choices) in cases {
            let got = declared(endpoint, caps, 3, 9);
            assert_eq!((got.max_output_tokens, got.choices), (cap, choices), "{endpoint:?} {caps:?}");
        }
    }

    #[test]
    fn charges_follow_how_the_response_ended() {
        let usage = Some(Usage { input_tokens: 3, output_tokens: 4 });
        let r = reservation(500, 20);
        let cases = [
            (Some(200), ResponseEnd::Complete, usage, 7),
            (Some(200), ResponseEnd::Failed, usage, 7),
            (Some(200), ResponseEnd::Failed, None, 20),
            (Some(200), ResponseEnd::Complete, None, 500),
            (Some(200), ResponseEnd::Cut, usage, 500),
            // Cut after the provider reported more than was reserved (input tokens come first).
            (Some(200), ResponseEnd::Cut, Some(Usage { input_tokens: 50_000, output_tokens: 1 }), 50_001),
            (Some(503), ResponseEnd::Complete, None, 20),
            (Some(429), ResponseEnd::Cut, usage, 20),
            (None, ResponseEnd::Cut, None, 500),
        ];
        for (status, end, usage, charged) in cases {
            assert_eq!(charge(&r, status, end, usage), charged, "{status:?} {end:?} {usage:?}");
        }
    }
}
