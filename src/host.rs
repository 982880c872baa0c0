//! The only module that calls into the proxy-wasm host: contexts, header maps, bodies, shared data,
//! the clock, logging. It applies the decisions of [`crate::flow`] and holds no logic of its own.

use ai_gateway_core::api_error::{ApiError, ApiFormat, ErrorKind};
use ai_gateway_core::config::{Config, Role};
use ai_gateway_core::flow::{
    AttemptFlow, AttemptTarget, BodyAction, BodyProgress, HeadersAction, Io, LocalReply, RequestFlow,
    ATTEMPT_HEADERS_PROPERTY,
};
use ai_gateway_core::metrics::{self, MetricKind, MetricUpdate, RequestSummary};
use ai_gateway_core::ports::{Clock, HeaderMap, SharedStore, StoreError};
use ai_gateway_core::quota;
use ai_gateway_core::routing::next_random;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(GatewayRoot::default()));
}}

fn log(level: LogLevel, message: &str) {
    // Logging can only fail if the host is gone; there is nowhere else to report it.
    let _ = hostcalls::log(level, message);
}

fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

thread_local! {
    /// Metric ids by name, defined on first use (one VM per worker thread).
    static METRIC_IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn emit(update: &MetricUpdate) {
    METRIC_IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        let id = match ids.get(&update.name) {
            Some(id) => *id,
            None => {
                let kind = match update.kind {
                    MetricKind::Counter => MetricType::Counter,
                    MetricKind::Histogram => MetricType::Histogram,
                };
                let Ok(id) = hostcalls::define_metric(kind, &update.name) else { return };
                ids.insert(update.name.clone(), id);
                id
            }
        };
        let _ = match update.kind {
            MetricKind::Counter => hostcalls::increment_metric(id, i64::try_from(update.value).unwrap_or(i64::MAX)),
            MetricKind::Histogram => hostcalls::record_metric(id, update.value),
        };
    });
}

/// The host's clock, read at most once per callback and only if something needs the time.
#[derive(Default)]
struct HostClock(Cell<Option<u64>>);

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        *self.0.get().get_or_insert_with(now_ns)
    }
}

/// The request or response headers of the current HTTP context. The whole map is read from the
/// host once, on first use, and reads are served from that copy (one host call instead of one per
/// header); writes go to the host and keep the copy current.
struct HostHeaders {
    map: MapType,
    snapshot: Option<Vec<(String, Vec<u8>)>>,
}

impl HostHeaders {
    fn new(map: MapType) -> Self {
        HostHeaders { map, snapshot: None }
    }

    fn snapshot(&mut self) -> &mut Vec<(String, Vec<u8>)> {
        let map = self.map;
        // Bytes, not String: the SDK's String variants panic on non-UTF-8 header values.
        self.snapshot.get_or_insert_with(|| hostcalls::get_map_bytes(map).unwrap_or_default())
    }
}

impl HeaderMap for HostHeaders {
    fn get(&mut self, name: &str) -> Option<String> {
        let (_, value) = self.snapshot().iter().find(|(n, _)| n == name)?;
        Some(String::from_utf8_lossy(value).into_owned())
    }

    fn get_all(&mut self, name: &str) -> Vec<String> {
        let values = self.snapshot().iter().filter(|(n, _)| n == name);
        values.map(|(_, value)| String::from_utf8_lossy(value).into_owned()).collect()
    }

    fn set(&mut self, name: &str, value: &str) {
        if hostcalls::set_map_value(self.map, name, Some(value)).is_err() {
            log(LogLevel::Warn, &format!("ai-gateway: could not set header {name}"));
        }
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.retain(|(n, _)| n != name);
            snapshot.push((name.to_owned(), value.as_bytes().to_vec()));
        }
    }

    fn remove(&mut self, name: &str) {
        let present = self.snapshot().iter().any(|(n, _)| n == name);
        if present {
            if hostcalls::remove_map_value(self.map, name).is_err() {
                log(LogLevel::Warn, &format!("ai-gateway: could not remove header {name}"));
            }
            self.snapshot().retain(|(n, _)| n != name);
        }
    }

    fn names(&mut self) -> Vec<String> {
        self.snapshot().iter().map(|(name, _)| name.clone()).collect()
    }
}

/// Envoy's shared data for this VM id.
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}

/// One per worker thread: holds the current configuration and seeds per-request randomness.
#[derive(Default)]
struct GatewayRoot {
    config: Option<Rc<Config>>,
    random_state: Cell<u64>,
}

impl Context for GatewayRoot {}

impl RootContext for GatewayRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let document =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        match Config::parse(&document) {
            Ok(config) => {
                if config.role == Role::Downstream {
                    quota::create_missing(&HostStore, config.limits());
                }
                self.random_state.set(self.random_state.get() ^ now_ns());
                self.config = Some(Rc::new(config));
                true
            }
            Err(error) => {
                log(LogLevel::Error, &error.to_string());
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.config.as_ref().is_some_and(|config| config.role == Role::Upstream) {
            return Some(Box::new(AttemptHttp {
                flow: AttemptFlow::new(self.config.clone()),
                read_response_body: false,
                hold_response_body: false,
            }));
        }
        let mut state = self.random_state.get();
        let random = next_random(&mut state);
        self.random_state.set(state);
        Some(Box::new(GatewayHttp {
            flow: RequestFlow::new(self.config.clone(), random),
            read_response_body: false,
            hold_response_body: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct GatewayHttp {
    flow: RequestFlow,
    /// Whether the flow needs the response body's chunks (its last decision said so).
    read_response_body: bool,
    /// Whether the response body is held until it has arrived whole (a translated JSON answer).
    hold_response_body: bool,
}

impl GatewayHttp {
    fn io<'a>(headers: &'a mut HostHeaders, clock: &'a HostClock) -> Io<'a> {
        Io { headers, store: &HostStore, clock }
    }

    /// Sets the filter-state properties and writes the log lines the flow produced.
    fn flush(&mut self) {
        for (name, value) in self.flow.take_properties() {
            let _ = hostcalls::set_property(vec![name], Some(value.as_bytes()));
        }
        for line in self.flow.take_logs() {
            log(LogLevel::Info, &line);
        }
    }

    fn finish(&mut self) {
        let summary: Option<RequestSummary> = self.flow.on_done(&HostStore, &HostClock::default());
        for update in summary.iter().flat_map(metrics::updates) {
            emit(&update);
        }
        self.flush();
    }

    /// The request has ended: reads the whole buffered body and carries out the flow's decision.
    /// Nothing but `Forward` lets the request continue to a cluster.
    fn decide_on_request(&mut self, has_trailers: bool) -> Action {
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action = self.flow.on_request_body(&mut GatewayHttp::io(&mut headers, &HostClock::default()), &body);
        self.flush();
        match action {
            BodyAction::Forward { new_body } => {
                if let Some(new_body) = new_body {
                    if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body).is_err() {
                        log(LogLevel::Error, "ai-gateway: could not replace the request body");
                        return respond(internal_error());
                    }
                }
                clear_request_trailers(has_trailers);
                if hostcalls::call_foreign_function("clear_route_cache", None).is_err() {
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
        let chunk = match self.read_response_body || self.hold_response_body {
            true => {
                hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
            }
            false => Vec::new(),
        };
        let action = self.flow.on_response_body(&chunk, end_of_stream);
        self.read_response_body = action.read_body;
        if let Some(bytes) = action.replace {
            if hostcalls::set_buffer(BufferType::HttpResponseBody, 0, chunk.len(), &bytes).is_err() {
                log(LogLevel::Error, "ai-gateway: could not replace a response body chunk");
            }
        }
    }
}

impl Context for GatewayHttp {}

impl HttpContext for GatewayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action =
            self.flow.on_request_headers(&mut GatewayHttp::io(&mut headers, &HostClock::default()), end_of_stream);
        self.flush();
        match action {
            HeadersAction::ReadBody => Action::Pause,
            HeadersAction::Respond(reply) => respond(reply),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            return self.decide_on_request(false);
        }
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let progress =
            self.flow.on_request_body_progress(&mut GatewayHttp::io(&mut headers, &HostClock::default()), body_size);
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
        self.decide_on_request(true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
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
        // A held body is still buffered: read it whole (the size is capped by what is there).
        let buffered = if self.hold_response_body { usize::MAX } else { 0 };
        self.pass_response_body(buffered, true);
        self.finish();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish();
    }
}

/// One attempt of a request along a fallback chain, in the upstream filter on its aggregate cluster.
struct AttemptHttp {
    flow: AttemptFlow,
    read_response_body: bool,
    hold_response_body: bool,
}

/// A property of the stream as text; `None` when it is absent or the host refused (the SDK's own
/// `get_property` panics on host errors other than not-found).
fn property(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    String::from_utf8(bytes).ok().filter(|text| !text.is_empty())
}

impl AttemptHttp {
    fn flush_logs(&mut self) {
        for line in self.flow.take_logs() {
            log(LogLevel::Info, &line);
        }
    }

    fn decide_on_request(&mut self, has_trailers: bool) -> Action {
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let target = AttemptTarget {
            cluster: property(&["xds", "cluster_name"]),
            provider: property(&["xds", "upstream_host_metadata", "filter_metadata", "ai_gw", "provider"]),
            request_headers: property(&[ATTEMPT_HEADERS_PROPERTY]),
        };
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action =
            self.flow.on_request_body(&mut GatewayHttp::io(&mut headers, &HostClock::default()), &body, &target);
        self.flush_logs();
        match action {
            BodyAction::Forward { new_body } => {
                if let Some(new_body) = new_body {
                    if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body).is_err() {
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
        let chunk =
            hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size).ok().flatten().unwrap_or_default();
        let action = self.flow.on_response_body(&chunk, end_of_stream);
        self.read_response_body = action.read_body;
        if let Some(bytes) = action.replace {
            if hostcalls::set_buffer(BufferType::HttpResponseBody, 0, chunk.len(), &bytes).is_err() {
                log(LogLevel::Error, "ai-gateway: could not replace a response body chunk of an attempt");
            }
        }
    }
}

impl Context for AttemptHttp {}

impl HttpContext for AttemptHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut headers = HostHeaders::new(MapType::HttpRequestHeaders);
        let action = self.flow.on_request_headers(&mut GatewayHttp::io(&mut headers, &HostClock::default()));
        self.flush_logs();
        match action {
            // A request without a body is decided now (and refused): no body callback would come.
            HeadersAction::ReadBody if end_of_stream => self.decide_on_request(false),
            HeadersAction::ReadBody => Action::Pause,
            HeadersAction::Respond(reply) => respond(reply),
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            return self.decide_on_request(false);
        }
        Action::Pause
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.decide_on_request(true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut headers = HostHeaders::new(MapType::HttpResponseHeaders);
        let action = self.flow.on_response_headers(&mut headers);
        action.apply_to(&mut headers);
        self.read_response_body = action.read_body;
        self.hold_response_body = action.hold_body;
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.hold_response_body && !end_of_stream {
            return Action::Pause;
        }
        self.pass_response_body(body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let buffered = if self.hold_response_body { usize::MAX } else { 0 };
        self.pass_response_body(buffered, true);
        Action::Continue
    }
}

/// Request trailers are not the provider's business (and are never read by the gateway): emptied
/// when the request has some. Touching the map of a request without trailers would add them.
fn clear_request_trailers(has_trailers: bool) {
    if has_trailers {
        let _ = hostcalls::set_map(MapType::HttpRequestTrailers, vec![]);
    }
}

/// A 500 for a request the host could not carry out as the flow decided.
fn internal_error() -> LocalReply {
    let error = ApiError::new(ErrorKind::Internal, "internal_error", "The gateway could not forward this request.");
    LocalReply::error(&error, ApiFormat::OpenAi)
}

/// Sends a local reply and stops the request from going upstream.
fn respond(reply: LocalReply) -> Action {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    if hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body)).is_err() {
        log(LogLevel::Error, "ai-gateway: could not send a local reply");
    }
    Action::Pause
}
