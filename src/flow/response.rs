//! The response side of a request: rate-limit and cache headers, usage and the cache copy read as
//! the body passes, and the settlement when the request is over.

use super::{Phase, RequestFlow, Reservation, CACHE_HEADER};
use crate::cache::{self, entry::Entry};
use crate::metrics::{Outcome, RequestSummary};
use crate::ports::{Clock, HeaderMap, SharedStore};
use crate::quota;
use crate::usage::{BodyFormat, Usage, UsageReader};

impl RequestFlow {
    /// Response headers of a forwarded request: adds the rate-limit headers, starts reading usage.
    pub fn on_response_headers(&mut self, headers: &mut dyn HeaderMap, clock: &dyn Clock, end_of_stream: bool) {
        if self.phase != Phase::Forwarded {
            return;
        }
        self.first_byte_at_ns = Some(clock.now_ns());
        for (name, value) in &self.rate_headers {
            headers.set(name, value);
        }
        if let Some(cache) = self.summary.cache {
            headers.set(CACHE_HEADER, cache.name());
        }
        self.response_status = headers.get(":status").and_then(|status| status.parse().ok());
        let format = headers.get("content-type").and_then(|content_type| BodyFormat::from_content_type(&content_type));
        self.usage_reader = format.map(UsageReader::new);
        self.response_complete = end_of_stream;
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
        self.response_complete |= end_of_stream;
    }

    /// The response has ended, or the request is over (completed, failed or aborted): settles the
    /// token reservation to the real usage (or an estimate when none is known), stores the answer in
    /// the cache, and returns what the metrics need; `None` if that was already done.
    pub fn on_done(&mut self, store: &dyn SharedStore, clock: &dyn Clock) -> Option<RequestSummary> {
        if self.finished {
            return None;
        }
        self.finished = true;
        if self.phase != Phase::Forwarded {
            // Answered locally (already recorded), or never got past the headers.
            self.phase = Phase::Done;
            return Some(self.summary.clone()).filter(|s| s.outcome.is_some());
        }
        self.phase = Phase::Done;
        let usage = self.usage_reader.as_mut().and_then(UsageReader::finish);
        let now_ns = clock.now_ns();
        self.summary.upstream_ms = self.forwarded_at_ns.map(|sent| now_ns.saturating_sub(sent) / 1_000_000);
        self.summary.first_byte_ms =
            self.first_byte_at_ns.zip(self.forwarded_at_ns).map(|(first, sent)| first.saturating_sub(sent) / 1_000_000);
        self.summary.usage = usage;
        let succeeded = matches!(self.response_status, Some(200..=299)) && self.response_complete;
        self.summary.outcome = Some(if succeeded { Outcome::Ok } else { Outcome::UpstreamError });
        if !succeeded {
            let status = self.response_status.map_or("none".to_owned(), |s| s.to_string());
            self.log(&format!("upstream_error status={status} complete={}", self.response_complete));
        }
        let settings = self.config.as_deref().and_then(|config| config.cache);
        if let (Some(recording), Some(settings)) = (self.recording.take(), settings) {
            if let (Some(format), true) =
                (recording.format, self.response_complete && self.response_status == Some(200))
            {
                let entry = Entry { key: recording.key, stored_at_ns: now_ns, format, body: recording.body };
                self.summary.cache_store = match cache::store(store, &settings, &entry, now_ns) {
                    cache::Stored::Fresh => Some("fresh"),
                    cache::Stored::Replaced => Some("replaced"),
                    cache::Stored::TooLarge | cache::Stored::Failed => None,
                };
            }
        }
        if let Some(reservation) = self.reservation.take() {
            let charged = charge(reservation, self.response_status, self.response_complete, usage);
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
/// - a complete 2xx response that reported usage: the usage;
/// - an upstream error (not 2xx): the prompt estimate (the provider generated nothing);
/// - anything else (client abort, stream cut short, no usage reported): the whole reservation.
fn charge(reservation: Reservation, status: Option<u16>, complete: bool, usage: Option<Usage>) -> u64 {
    match (status, usage) {
        (Some(200..=299), Some(usage)) if complete => usage.total(),
        (Some(status), _) if !(200..=299).contains(&status) => reservation.prompt_estimate.min(reservation.reserved),
        _ => reservation.reserved,
    }
}
