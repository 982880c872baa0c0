//! The response side of a request: rate-limit and cache headers, usage and the cache copy read as
//! the body passes, and the settlement when the request is over.

use super::{Phase, RequestFlow, Reservation, CACHE_HEADER};
use crate::cache::{self, entry::Entry};
use crate::metrics::{Outcome, RequestSummary};
use crate::ports::{Clock, HeaderMap, SharedStore};
use crate::quota;
use crate::usage::{BodyEnd, BodyFormat, Usage, UsageReader};

/// How a forwarded request's response ended, judged by its protocol, not by the transport: a stream
/// is complete at its end marker (`[DONE]`, `response.completed`, `message_stop`) even if the
/// connection stays open after it, and cut short without it even if the connection closed cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Complete,
    /// The protocol said the answer failed (an `error` event, `response.failed`).
    Failed,
    /// No end was seen: the client or the provider hung up, or the body was cut.
    Cut,
}

impl RequestFlow {
    /// Response headers of a forwarded request: adds the rate-limit headers, starts reading usage.
    pub fn on_response_headers(&mut self, headers: &mut dyn HeaderMap, clock: &dyn Clock, end_of_stream: bool) {
        let Phase::Forwarded { endpoint } = self.phase else { return };
        self.first_byte_at_ns = Some(clock.now_ns());
        for (name, value) in &self.rate_headers {
            headers.set(name, value);
        }
        if let Some(cache) = self.summary.cache {
            headers.set(CACHE_HEADER, cache.name());
        }
        self.response_status = headers.get(":status").and_then(|status| status.parse().ok());
        // A compressed body cannot be read as it passes (the gateway asks for none, by removing
        // `accept-encoding`): no usage, no cache, and the reservation is charged whole.
        let encoding = headers.get("content-encoding").filter(|e| !e.trim().eq_ignore_ascii_case("identity"));
        if let Some(encoding) = &encoding {
            self.log(&format!("response content-encoding={encoding}: usage unreadable, not cached"));
        }
        let format = headers
            .get("content-type")
            .and_then(|content_type| BodyFormat::from_content_type(&content_type))
            .filter(|_| encoding.is_none());
        self.usage_reader = format.map(|format| UsageReader::new(format, endpoint.response_api()));
        self.response_ended = end_of_stream;
        let max_entry_bytes = self.config.as_deref().and_then(|c| c.cache).map_or(0, |c| c.max_entry_bytes as usize);
        let declared_length = headers.get("content-length").and_then(|length| length.parse::<usize>().ok());
        let cacheable = self.response_status == Some(200)
            && format.is_some()
            && declared_length.is_none_or(|length| length <= max_entry_bytes);
        match &mut self.recording {
            Some(recording) if cacheable => {
                recording.format = format;
                recording.body.reserve(declared_length.unwrap_or(0));
            }
            _ => self.recording = None,
        }
    }

    /// Whether the host needs to hand over response body chunks.
    pub fn wants_response_body(&self) -> bool {
        self.usage_reader.is_some() || self.recording.is_some()
    }

    /// A chunk of the response body, as it passes (it is never held back).
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) {
        if let Some(reader) = &mut self.usage_reader {
            reader.feed(chunk);
        }
        if let Some(recording) = &mut self.recording {
            let max_entry_bytes =
                self.config.as_deref().and_then(|c| c.cache).map_or(0, |c| c.max_entry_bytes as usize);
            if recording.body.len() + chunk.len() > max_entry_bytes {
                self.recording = None;
            } else {
                recording.body.extend_from_slice(chunk);
            }
        }
        self.response_ended |= end_of_stream;
    }

    fn ending(&self) -> Ending {
        match self.usage_reader.as_ref().map(UsageReader::end) {
            Some(Some(BodyEnd::Completed)) => Ending::Complete,
            Some(Some(BodyEnd::Failed)) => Ending::Failed,
            Some(None) => Ending::Cut,
            // A body the gateway cannot read ends with the transport.
            None if self.response_ended => Ending::Complete,
            None => Ending::Cut,
        }
    }

    /// The response has ended, or the request is over (completed, failed or aborted): settles the
    /// token reservation to the real usage (or an estimate when none is known), stores the answer in
    /// the cache, and returns what the metrics need; `None` if that was already done.
    pub fn on_done(&mut self, store: &dyn SharedStore, clock: &dyn Clock) -> Option<RequestSummary> {
        if self.finished {
            return None;
        }
        self.finished = true;
        if !matches!(self.phase, Phase::Forwarded { .. }) {
            // Answered locally (already recorded), or never got past the headers.
            self.phase = Phase::Done;
            return Some(self.summary.clone()).filter(|s| s.outcome.is_some());
        }
        self.phase = Phase::Done;
        let usage = self.usage_reader.as_mut().and_then(UsageReader::finish);
        let ending = self.ending();
        let now_ns = clock.now_ns();
        self.summary.upstream_ms = self.forwarded_at_ns.map(|sent| now_ns.saturating_sub(sent) / 1_000_000);
        self.summary.first_byte_ms =
            self.first_byte_at_ns.zip(self.forwarded_at_ns).map(|(first, sent)| first.saturating_sub(sent) / 1_000_000);
        self.summary.usage = usage;
        let succeeded = matches!(self.response_status, Some(200..=299)) && ending == Ending::Complete;
        self.summary.outcome = Some(if succeeded { Outcome::Ok } else { Outcome::UpstreamError });
        if !succeeded {
            let status = self.response_status.map_or("none".to_owned(), |s| s.to_string());
            self.log(&format!(
                "upstream_error status={status} ending={ending:?} transport_ended={}",
                self.response_ended
            ));
        }
        let settings = self.config.as_deref().and_then(|config| config.cache);
        if let (Some(recording), Some(settings)) = (self.recording.take(), settings) {
            if let (Some(format), true) = (recording.format, succeeded && self.response_status == Some(200)) {
                let entry = Entry { key: recording.key, stored_at_ns: now_ns, format, body: recording.body };
                self.summary.cache_store = match cache::store(store, &settings, &entry, now_ns) {
                    cache::Stored::Fresh => Some("fresh"),
                    cache::Stored::Replaced => Some("replaced"),
                    cache::Stored::TooLarge | cache::Stored::Failed => None,
                };
            }
        }
        if let Some(reservation) = self.reservation.take() {
            let charged = charge(reservation, self.response_status, ending, usage);
            let delta = i64::try_from(i128::from(charged) - i128::from(reservation.reserved)).unwrap_or(0);
            let key = self.config.as_deref().and_then(|config| config.key(reservation.key_index));
            for limit in key.into_iter().flat_map(|key| key.limits.iter()).filter(|l| l.kind.counts_tokens()) {
                // Best effort: a failed settlement leaves the reservation in place, which refills.
                let _ = quota::adjust(store, limit, delta, now_ns);
            }
        }
        self.record_properties();
        Some(self.summary.clone())
    }
}

/// What a finished request is charged, in tokens:
/// - a 2xx response that ended by its protocol (complete, or failed by an error event) and reported
///   usage: the usage;
/// - an upstream error (not 2xx), or a failed stream that reported no usage: the prompt estimate;
/// - anything else (client abort, stream cut short, no usage reported): the whole reservation.
fn charge(reservation: Reservation, status: Option<u16>, ending: Ending, usage: Option<Usage>) -> u64 {
    let prompt_estimate = reservation.prompt_estimate.min(reservation.reserved);
    match (status, ending, usage) {
        (Some(200..=299), Ending::Complete | Ending::Failed, Some(usage)) => usage.total(),
        (Some(200..=299), Ending::Failed, None) => prompt_estimate,
        (Some(status), _, _) if !(200..=299).contains(&status) => prompt_estimate,
        _ => reservation.reserved,
    }
}
