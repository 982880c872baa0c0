//! The listener's filter (role `downstream`): carries out the request flow's decisions on the
//! host, for requests from clients.

use super::{calls, clear_request_trailers, emit, internal_error, io, log, respond, HostClock, HostHeaders, HostStore};
use ai_gateway_core::config::Config;
use ai_gateway_core::flow::{BodyAction, BodyProgress, HeadersAction, RequestFlow};
use ai_gateway_core::metrics::RequestSummary;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use std::rc::Rc;

pub(super) struct GatewayHttp {
    flow: RequestFlow,
    /// The request headers, read from Envoy once and kept from the headers callback to the body's:
    /// while the filter holds the request, only the filter changes them.
    request_headers: HostHeaders,
    /// Whether the flow needs the response body's chunks (its last decision said so).
    read_response_body: bool,
    /// Whether the response body is held until it has arrived whole (a translated JSON answer).
    hold_response_body: bool,
}

impl GatewayHttp {
    pub(super) fn new(config: Option<Rc<Config>>, random: u64) -> Self {
        GatewayHttp {
            flow: RequestFlow::new(config, random),
            request_headers: HostHeaders::new(MapType::HttpRequestHeaders),
            read_response_body: false,
            hold_response_body: false,
        }
    }

    /// Sets the filter-state properties and writes the log lines the flow produced.
    fn flush(&mut self) {
        for (name, value) in self.flow.take_properties() {
            let _ = calls::set_property(name, value.as_bytes());
        }
        for line in self.flow.take_logs() {
            log(LogLevel::Info, &line);
        }
    }

    fn finish(&mut self) {
        let summary: Option<RequestSummary> = self.flow.on_done(&HostStore, &HostClock::default());
        if let Some(summary) = summary {
            emit(&summary);
        }
        self.flush();
    }

    /// The request has ended: reads the whole buffered body and carries out the flow's decision.
    /// Nothing but `Forward` lets the request continue to a cluster.
    fn decide_on_request(&mut self, has_trailers: bool) -> Action {
        let body = calls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX);
        let action = self.flow.on_request_body(&mut io(&mut self.request_headers, &HostClock::default()), &body);
        self.flush();
        match action {
            BodyAction::Forward { new_body } => {
                if let Some(new_body) = new_body {
                    if calls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body).is_err() {
                        log(LogLevel::Error, "ai-gateway: could not replace the request body");
                        return respond(internal_error());
                    }
                }
                clear_request_trailers(has_trailers);
                if calls::call_foreign_function("clear_route_cache").is_err() {
                    log(LogLevel::Error, "ai-gateway: clear_route_cache failed; refusing rather than misrouting");
                    return respond(internal_error());
                }
                Action::Continue
            }
            BodyAction::Respond(reply) => respond(reply),
            BodyAction::Hold => Action::Pause,
        }
    }

    /// Hands the flow the body it asked for (the current chunk, or a held body whole) and puts the
    /// client's bytes in its place when the flow changed them.
    fn pass_response_body(&mut self, body_size: usize, end_of_stream: bool) {
        // An empty end of stream (Envoy's last callback after the data) has nothing to read.
        let chunk = match (self.read_response_body || self.hold_response_body) && body_size > 0 {
            true => calls::get_buffer(BufferType::HttpResponseBody, 0, body_size),
            false => Vec::new(),
        };
        let action = self.flow.on_response_body(&chunk, end_of_stream);
        self.read_response_body = action.read_body;
        if let Some(bytes) = action.replace {
            if calls::set_buffer(BufferType::HttpResponseBody, 0, chunk.len(), &bytes).is_err() {
                log(LogLevel::Error, "ai-gateway: could not replace a response body chunk");
            }
        }
    }
}

impl Context for GatewayHttp {
    fn on_done(&mut self) -> bool {
        calls::callback();
        true
    }
}

/// The context's deletion is Envoy's last callback for the request.
impl Drop for GatewayHttp {
    fn drop(&mut self) {
        calls::callback();
    }
}

impl HttpContext for GatewayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        calls::callback();
        let action =
            self.flow.on_request_headers(&mut io(&mut self.request_headers, &HostClock::default()), end_of_stream);
        self.flush();
        match action {
            HeadersAction::ReadBody => Action::Pause,
            HeadersAction::Respond(reply) => respond(reply),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        calls::callback();
        if end_of_stream {
            return self.decide_on_request(false);
        }
        let progress =
            self.flow.on_request_body_progress(&mut io(&mut self.request_headers, &HostClock::default()), body_size);
        self.flush();
        match progress {
            BodyProgress::KeepReading => Action::Pause,
            BodyProgress::Respond(reply) => respond(reply),
        }
    }

    /// Trailers end the request just as a last data frame does (HTTP/2 trailers, HTTP/1.1 chunked
    /// trailers that Envoy keeps). Without this the SDK's default would let the held request go
    /// upstream undecided.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        calls::callback();
        self.decide_on_request(true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        calls::callback();
        let clock = HostClock::default();
        let mut headers = HostHeaders::new(MapType::HttpResponseHeaders);
        let action = self.flow.on_response_headers(&mut headers, &clock, end_of_stream);
        action.apply_to(&mut headers);
        self.read_response_body = action.read_body;
        self.hold_response_body = action.hold_body;
        if end_of_stream {
            self.finish();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        calls::callback();
        if self.hold_response_body && !end_of_stream {
            // Envoy buffers it; the whole body is read once, at its end.
            return Action::Pause;
        }
        self.pass_response_body(body_size, end_of_stream);
        if end_of_stream {
            // Settle now, before the client can send its next request; `on_log` then has nothing left.
            self.finish();
        }
        Action::Continue
    }

    /// Response trailers end the response (HTTP/2 and gRPC-style upstreams): a held body is handed
    /// over whole now, then the request is settled.
    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        calls::callback();
        self.flow.on_response_trailers(&mut HostHeaders::new(MapType::HttpResponseTrailers));
        // A held body is still buffered: read it whole (the size is capped by what is there).
        let buffered = if self.hold_response_body { usize::MAX } else { 0 };
        self.pass_response_body(buffered, true);
        self.finish();
        Action::Continue
    }

    fn on_log(&mut self) {
        calls::callback();
        self.finish();
    }
}
