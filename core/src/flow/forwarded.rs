//! A forwarded request: its response read as it passes (rate-limit and cache headers added, usage
//! and the protocol's end read, the answer copied for the cache), and its settlement when it is
//! over: the reservation charged, the answer stored, the outcome decided.

use super::attempt::UPSTREAM_HEADER;
use super::decision::{ResponseBodyAction, ResponseHeadersAction};
use super::report::Report;
use super::CACHE_HEADER;
use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::body_format::response_body;
use crate::cache::recorder::{CacheEvent, Recorder};
use crate::config::{Config, QuotaMode};
use crate::endpoint::ModelEndpoint;
use crate::metrics::{Outcome, ServiceFailure};
use crate::ports::{Clock, HeaderMap, ResponseInfo, SharedStore};
use crate::quota::global::{service_status, SERVICE_HEADERS};
use crate::quota::headers::{LimitFamily, RateLimitHeaders};
use crate::quota::reservation::{self, Reservation, ResponseEnd};
use crate::quota::LimitKind;
use crate::translate::plan::{translated_headers, ClientView, ResponseTranslator, Translation};
use crate::upstream_headers;
use crate::usage::{BodyEnd, UsageReader};

/// The header Envoy's rate limit filter puts on its 429s (removed: the client gets `retry-after`).
pub const RATE_LIMITED_HEADER: &str = "x-envoy-ratelimited";
/// Envoy's response code details on its rate limit filter's replies: over the limit, and the
/// service not answering with `failure_mode_deny: true`. Unlike a header, no provider can forge them.
pub const OVER_LIMIT_DETAILS: &str = "request_rate_limited";
pub const SERVICE_ERROR_DETAILS: &str = "rate_limiter_error";
/// The filter-state property holding the tokens a request is charged, read by Envoy's rate limit
/// filter (`hits_addend: %FILTER_STATE(wasm.ai_gw_tokens:PLAIN)%`) when the stream is done.
pub const TOKENS_PROPERTY: &str = "ai_gw_tokens";
/// The largest `hits_addend` Envoy's rate limit filter sends (it drops a descriptor beyond).
const MAX_HITS_ADDEND: u64 = 1_000_000_000;

/// Envoy's count of upstream attempts, on responses of routes with
/// `include_attempt_count_in_response` (the shipped configs).
pub const ATTEMPT_COUNT_HEADER: &str = "x-envoy-attempt-count";

/// What is known of the response so far.
#[derive(Debug, Default)]
struct Response {
    status: Option<u16>,
    /// Reads usage and the protocol's end; `None` for a body the gateway cannot read (another
    /// content type, or compressed).
    reader: Option<UsageReader>,
    /// The response's last byte passed (the transport's end, not the protocol's).
    ended: bool,
    first_byte_at_ns: Option<u64>,
}

/// How the request was sent: the endpoint the provider serves it at, the translation of its answer
/// (when the provider speaks the other API), and when.
#[derive(Debug)]
pub(super) struct Sent {
    pub endpoint: ModelEndpoint,
    pub translation: Option<(Translation, ClientView)>,
    pub at_ns: u64,
    /// Through a fallback chain: the names of its providers, in order (the answer says which one
    /// answered, and is in the client's API already).
    pub chain: Option<Vec<String>>,
    /// The key whose limits the global rate limit service counts (`quota.mode: global`).
    pub service_key: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Forwarded {
    sent: Sent,
    rate_headers: RateLimitHeaders,
    cache_event: Option<CacheEvent>,
    reservation: Option<Reservation>,
    /// Copies the answer as the client sees it (translated, if it is).
    recorder: Option<Recorder>,
    translator: Option<ResponseTranslator>,
    response: Response,
    /// The response is a reply of Envoy's own, replaced by an error in the client's format.
    refusal: Option<Refusal>,
    /// Seconds until the rate limit service's tightest limit resets, as its headers said.
    service_reset_seconds: Option<u64>,
    /// The key's limit the rate limit service's headers described (its tightest).
    service_limit: Option<LimitKind>,
}

/// Replies of Envoy's own that the gateway rewrites into the client's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No provider of a fallback chain could answer (none reachable, or the last timed out).
    ChainUnavailable,
    /// Envoy's rate limit filter refused: the global rate limit service said over the limit.
    RateLimitService,
    /// Envoy's rate limit filter refused because the service could not be asked
    /// (`failure_mode_deny: true`).
    RateLimitServiceDown,
}

impl Refusal {
    /// A refusal of Envoy's rate limit filter: nothing was sent upstream.
    fn before_upstream(self) -> bool {
        matches!(self, Refusal::RateLimitService | Refusal::RateLimitServiceDown)
    }

    fn error(self) -> ApiError {
        match self {
            Refusal::ChainUnavailable => ApiError::new(
                ErrorKind::Unavailable,
                "upstream_unavailable",
                "No provider of this model's fallback chain could answer the request.",
            ),
            Refusal::RateLimitService => ApiError::new(
                ErrorKind::RequestLimit,
                "rate_limit_exceeded",
                "This API key's rate limit, shared by every gateway replica, is exhausted; retry after the time \
                 in the retry-after header.",
            ),
            Refusal::RateLimitServiceDown => ApiError::new(
                ErrorKind::Unavailable,
                "rate_limit_service_unavailable",
                "The gateway's rate limit service could not be reached, and the gateway refuses requests it \
                 cannot count; retry later.",
            ),
        }
    }
}

impl Forwarded {
    pub fn new(
        sent: Sent,
        rate_headers: RateLimitHeaders,
        cache_event: Option<CacheEvent>,
        reservation: Option<Reservation>,
        recorder: Option<Recorder>,
    ) -> Forwarded {
        let response = Response::default();
        Forwarded {
            sent,
            rate_headers,
            cache_event,
            reservation,
            recorder,
            translator: None,
            response,
            refusal: None,
            service_reset_seconds: None,
            service_limit: None,
        }
    }

    /// The response headers: adds the rate-limit and cache headers, starts reading usage and
    /// recording the answer where that is possible.
    pub fn on_response_headers(
        &mut self,
        config: &Config,
        headers: &mut dyn HeaderMap,
        info: &dyn ResponseInfo,
        end_of_stream: bool,
        report: &mut Report,
    ) -> ResponseHeadersAction {
        let seen_by_attempt = self.read_attempts(headers, report);
        let counted_by_service = self.read_service_status(config, headers);
        self.response.first_byte_at_ns = Some(info.now_ns());
        self.response.status = headers.get(":status").and_then(|status| status.parse().ok());
        if let Some(refusal) = self.envoy_refusal(info, seen_by_attempt) {
            return self.replace_envoy_reply(refusal, report);
        }
        if !counted_by_service {
            report.summary.service_failure = Some(ServiceFailure::Allowed);
            report.log(
                "the global rate limit service gave no count for this key (unreachable with failure_mode_deny: \
                 false, or its configuration lacks the key's limits): admitted on this replica's reservation only",
            );
        }
        let response = &mut self.response;
        response.ended = end_of_stream;
        // A compressed body: no usage, no cache, and the reservation is charged whole.
        let (format, encoding) = response_body(headers);
        if let Some(encoding) = &encoding {
            report.log(&format!("response content-encoding={encoding}: usage unreadable, not cached"));
        }
        response.reader = format.map(|format| UsageReader::new(format, self.sent.endpoint.response_api()));
        let declared_length = headers.get("content-length").and_then(|length| length.parse::<usize>().ok());
        let translated = self.sent.translation.as_ref().map(|_| {
            let changes = translated_headers(response.status, format, encoding.is_some());
            response.status = changes.status;
            changes
        });
        self.translator = self
            .sent
            .translation
            .as_ref()
            .map(|(translation, client)| translation.response(response.status, format, client));
        // A translated body has another length; the recorder keeps what the client sees.
        let recorded_length = declared_length.filter(|_| self.translator.is_none());
        self.recorder = self.recorder.take().and_then(|r| r.start(response.status, format, recorded_length));
        let mut set = self.rate_headers.to_headers();
        if let Some(event) = self.cache_event {
            set.push((CACHE_HEADER, event.name().to_owned()));
        }
        let mut remove = upstream_headers::provider_headers_to_remove(headers);
        if let Some(changes) = translated {
            remove.extend(changes.remove);
            set.extend(changes.set);
        }
        let hold_body = self.translator.as_ref().is_some_and(ResponseTranslator::holds_body);
        ResponseHeadersAction { remove, set, read_body: self.reads_body(), hold_body }
    }

    /// The global rate limit service's view of the key's tightest limit, in OpenAI's headers of its
    /// family (the rate limit filter's own headers are removed; the refusal path reads the reset
    /// before). Returns false when the key has limits and no count of one came back.
    fn read_service_status(&mut self, config: &Config, headers: &mut dyn HeaderMap) -> bool {
        let Some(key) = self.sent.service_key.and_then(|index| config.key(index)) else { return true };
        let [limit, remaining, reset] = SERVICE_HEADERS.map(|name| headers.get(name));
        let status = service_status(key, limit.as_deref(), remaining.as_deref(), reset.as_deref());
        if let Some((kind, status)) = status {
            self.rate_headers.set(LimitFamily::of(kind), Some(status));
            self.service_limit = Some(kind);
        }
        self.service_reset_seconds = reset.and_then(|seconds| seconds.trim().parse().ok());
        for name in SERVICE_HEADERS {
            headers.remove(name);
        }
        status.is_some() || key.limits.is_empty()
    }

    /// Which reply of Envoy's own this error is, when the gateway rewrites it: one of the rate limit
    /// filter's (told by Envoy's code details, asked only then), or no provider of a chain answering.
    fn envoy_refusal(&self, info: &dyn ResponseInfo, seen_by_attempt: bool) -> Option<Refusal> {
        if seen_by_attempt || self.response.status.is_none_or(|status| status < 400) {
            return None;
        }
        if self.sent.service_key.is_some() {
            match info.code_details().as_deref() {
                Some(OVER_LIMIT_DETAILS) => return Some(Refusal::RateLimitService),
                Some(SERVICE_ERROR_DETAILS) => return Some(Refusal::RateLimitServiceDown),
                _ => {}
            }
        }
        self.sent.chain.is_some().then_some(Refusal::ChainUnavailable)
    }

    /// Who answered and after how many attempts: Envoy's attempt count, and through a fallback
    /// chain the provider the upstream filter names (only a provider of the chain is believed).
    /// Returns whether an attempt's filter saw the response (else Envoy answered itself).
    fn read_attempts(&self, headers: &mut dyn HeaderMap, report: &mut Report) -> bool {
        if let Some(attempts) = headers.get(ATTEMPT_COUNT_HEADER).and_then(|count| count.trim().parse().ok()) {
            report.summary.attempts = Some(attempts);
        }
        headers.remove(ATTEMPT_COUNT_HEADER);
        let named = headers.get(UPSTREAM_HEADER);
        headers.remove(UPSTREAM_HEADER);
        if let Some(chain) = &self.sent.chain {
            let answered = named.clone().filter(|name| chain.contains(name));
            if answered.is_some() {
                report.summary.upstream = answered;
            }
            report.record_properties();
        }
        named.is_some()
    }

    /// A reply of Envoy's own, replaced whole by an error in the client's format: no provider of a
    /// fallback chain answered (the body follows the API of the last one tried), or Envoy's rate
    /// limit filter refused (no body of use; nothing was sent upstream, so nothing is charged, and
    /// `retry-after` comes from the service's reset time).
    fn replace_envoy_reply(&mut self, refusal: Refusal, report: &mut Report) -> ResponseHeadersAction {
        self.recorder = None;
        self.refusal = Some(refusal);
        let mut set = self.rate_headers.to_headers();
        let mut remove = vec!["content-length".to_owned()];
        match refusal {
            Refusal::ChainUnavailable => report.log("no provider of the fallback chain answered"),
            Refusal::RateLimitServiceDown => {
                report.summary.service_failure = Some(ServiceFailure::Refused);
                report.log("refused: the global rate limit service could not be asked (failure_mode_deny: true)");
            }
            Refusal::RateLimitService => {
                report.summary.refused_by = self.service_limit;
                report.log("refused by the global rate limit service");
                let seconds = self.service_reset_seconds.unwrap_or(1).max(1);
                set.retain(|(name, _)| !name.starts_with("retry-after"));
                set.push(("retry-after", seconds.to_string()));
                set.push(("retry-after-ms", seconds.saturating_mul(1000).to_string()));
                remove.push(RATE_LIMITED_HEADER.to_owned());
            }
        }
        if let Some(event) = self.cache_event {
            set.push((CACHE_HEADER, event.name().to_owned()));
        }
        ResponseHeadersAction { remove, set, read_body: true, hold_body: true }
    }

    /// The API format of the client (the provider's is another when the request was translated).
    fn client_format(&self) -> ApiFormat {
        match &self.sent.translation {
            Some((translation, _)) => translation.client_format(),
            None => self.sent.endpoint.format(),
        }
    }

    fn reads_body(&self) -> bool {
        self.response.reader.is_some() || self.recorder.is_some() || self.translator.is_some()
    }

    /// A chunk of the response body, as it passes; a held body (a translated JSON answer or error)
    /// comes whole, once, at its end. Returns the client's bytes when they differ from the provider's.
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> ResponseBodyAction {
        if let Some(refusal) = self.refusal {
            self.response.ended |= end_of_stream;
            let error = refusal.error();
            return ResponseBodyAction { read_body: false, replace: Some(error.body(self.client_format())) };
        }
        if let Some(reader) = &mut self.response.reader {
            reader.feed(chunk);
        }
        let replace = self.translator.as_mut().map(|translator| match translator.holds_body() {
            true => translator.whole_body(chunk),
            false => translator.stream_chunk(chunk, end_of_stream),
        });
        if let Some(recorder) = &mut self.recorder {
            if !recorder.copy(replace.as_deref().unwrap_or(chunk)) {
                self.recorder = None;
            }
        }
        self.response.ended |= end_of_stream;
        ResponseBodyAction { read_body: self.reads_body(), replace }
    }

    fn end(&self) -> ResponseEnd {
        match self.response.reader.as_ref().map(UsageReader::end) {
            Some(Some(BodyEnd::Completed)) => ResponseEnd::Complete,
            Some(Some(BodyEnd::Failed)) => ResponseEnd::Failed,
            Some(None) => ResponseEnd::Cut,
            // A body the gateway cannot read ends with the transport.
            None if self.response.ended => ResponseEnd::Complete,
            None => ResponseEnd::Cut,
        }
    }

    /// The request is over (completed, failed or aborted): decides its outcome, stores a complete
    /// answer in the cache, and settles the reservation to what the request is charged.
    pub fn settle(mut self, config: &Config, store: &dyn SharedStore, clock: &dyn Clock, report: &mut Report) {
        let usage = self.response.reader.as_mut().and_then(UsageReader::finish);
        let end = self.end();
        let now_ns = clock.now_ns();
        let status = self.response.status;
        let summary = &mut report.summary;
        summary.usage = usage;
        summary.upstream_ms = Some(now_ns.saturating_sub(self.sent.at_ns) / 1_000_000);
        summary.first_byte_ms =
            self.response.first_byte_at_ns.map(|first| first.saturating_sub(self.sent.at_ns) / 1_000_000);
        if summary.upstream.is_none() {
            // No provider of the chain answered (none could be reached): the chain's first.
            summary.upstream = self.sent.chain.as_ref().and_then(|chain| chain.first().cloned());
        }
        let succeeded = matches!(status, Some(200..=299)) && end == ResponseEnd::Complete;
        summary.outcome = Some(match (succeeded, self.refusal) {
            (_, Some(Refusal::RateLimitService)) => Outcome::RateLimited,
            (_, Some(Refusal::RateLimitServiceDown)) => Outcome::GatewayError,
            (true, _) => Outcome::Ok,
            (false, _) => Outcome::UpstreamError,
        });
        if let (Some(recorder), Some(settings), true) = (self.recorder.take(), config.cache.as_ref(), succeeded) {
            summary.cache_store = Some(recorder.store(store, settings, now_ns));
        }
        if let Some(reservation) = self.reservation.take() {
            let refused_before_upstream = self.refusal.is_some_and(Refusal::before_upstream);
            let charged = match refused_before_upstream {
                true => 0,
                false => reservation::charge(&reservation, status, end, usage),
            };
            if let Some(key) = config.key(reservation.key_index) {
                reservation::settle(store, key, &reservation, charged, now_ns);
            }
            if config.quota.mode == QuotaMode::Global {
                // What Envoy's rate limit filter charges the token limits at the stream's end
                // (Envoy drops a `hits_addend` over 1e9, so larger charges are capped there).
                report.set_property(TOKENS_PROPERTY, charged.min(MAX_HITS_ADDEND).to_string());
            }
        }
        if !succeeded && !self.refusal.is_some_and(Refusal::before_upstream) {
            let status = status.map_or("none".to_owned(), |s| s.to_string());
            report.log(&format!("upstream_error status={status} end={end:?} transport_ended={}", self.response.ended));
        }
        report.record_properties();
    }
}
