//! The upstream filter of fallback chains (role `upstream`): one attempt, rewritten for the
//! provider Envoy chose, with the answer translated back.

use super::{calls, clear_request_trailers, internal_error, io, log, respond, HostClock, HostHeaders};
use ai_gateway_core::config::Config;
use ai_gateway_core::flow::{AttemptFlow, AttemptTarget, BodyAction, HeadersAction, ATTEMPT_HEADERS_PROPERTY};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use std::rc::Rc;

/// One attempt of a request along a fallback chain, in the upstream filter on its aggregate cluster.
pub(super) struct AttemptHttp {
    flow: AttemptFlow,
    read_response_body: bool,
    hold_response_body: bool,
}

impl AttemptHttp {
    pub(super) fn new(config: Option<Rc<Config>>) -> Self {
        AttemptHttp { flow: AttemptFlow::new(config), read_response_body: false, hold_response_body: false }
    }

    fn flush_logs(&mut self) {
        for line in self.flow.take_logs() {
            log(LogLevel::Info, &line);
        }
    }

    fn decide_on_request(&mut self, has_trailers: bool) -> Action {
        let body = calls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX);
        let target = AttemptTarget {
            cluster: calls::get_property(&["xds", "cluster_name"]),
            provider: calls::get_property(&["xds", "upstream_host_metadata", "filter_metadata", "ai_gw", "provider"]),
            request_headers: calls::get_property(&[ATTEMPT_HEADERS_PROPERTY]),
        };
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action = self.flow.on_request_body(&mut io(&mut headers, &HostClock::default()), &body, &target);
        self.flush_logs();
        match action {
            BodyAction::Forward { new_body } => {
                if let Some(new_body) = new_body {
                    if calls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body).is_err() {
                        log(LogLevel::Error, "ai-gateway: could not replace the request body of an attempt");
                        return respond(internal_error());
                    }
                }
                clear_request_trailers(has_trailers);
                Action::Continue
            }
            BodyAction::Respond(reply) => respond(reply),
            BodyAction::Hold => Action::Pause,
        }
    }

    fn pass_response_body(&mut self, body_size: usize, end_of_stream: bool) {
        if !(self.read_response_body || self.hold_response_body) {
            return;
        }
        let chunk = match body_size {
            0 => Vec::new(),
            _ => calls::get_buffer(BufferType::HttpResponseBody, 0, body_size),
        };
        let action = self.flow.on_response_body(&chunk, end_of_stream);
        self.read_response_body = action.read_body;
        if let Some(bytes) = action.replace {
            if calls::set_buffer(BufferType::HttpResponseBody, 0, chunk.len(), &bytes).is_err() {
                log(LogLevel::Error, "ai-gateway: could not replace a response body chunk of an attempt");
            }
        }
    }
}

impl Context for AttemptHttp {
    fn on_done(&mut self) -> bool {
        calls::callback();
        true
    }
}

/// The context's deletion is Envoy's last callback for the request.
impl Drop for AttemptHttp {
    fn drop(&mut self) {
        calls::callback();
    }
}

impl HttpContext for AttemptHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        calls::callback();
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action = self.flow.on_request_headers(&mut io(&mut headers, &HostClock::default()));
        self.flush_logs();
        match action {
            // A request without a body is decided now (and refused): no body callback would come.
            HeadersAction::ReadBody if end_of_stream => self.decide_on_request(false),
            HeadersAction::ReadBody => Action::Pause,
            HeadersAction::Respond(reply) => respond(reply),
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        calls::callback();
        if end_of_stream {
            return self.decide_on_request(false);
        }
        Action::Pause
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        calls::callback();
        self.decide_on_request(true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        calls::callback();
        let mut headers = HostHeaders::new(MapType::HttpResponseHeaders);
        let action = self.flow.on_response_headers(&mut headers);
        action.apply_to(&mut headers);
        self.read_response_body = action.read_body;
        self.hold_response_body = action.hold_body;
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        calls::callback();
        if self.hold_response_body && !end_of_stream {
            return Action::Pause;
        }
        self.pass_response_body(body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        calls::callback();
        self.flow.on_response_trailers(&mut HostHeaders::new(MapType::HttpResponseTrailers));
        let buffered = if self.hold_response_body { usize::MAX } else { 0 };
        self.pass_response_body(buffered, true);
        Action::Continue
    }
}
