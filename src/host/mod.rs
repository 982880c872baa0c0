//! The only module that calls into the proxy-wasm host: contexts, header maps, bodies, shared data,
//! the clock, logging. It applies the decisions of `ai_gateway_core::flow` and holds no logic of its
//! own. This file has what both roles share and the root context, which picks the role;
//! [`listener`] is the listener's filter, [`attempt`] the upstream filter of fallback chains.

mod attempt;
mod calls;
mod listener;

use ai_gateway_core::api_error::{ApiError, ApiFormat, ErrorKind};
use ai_gateway_core::config::{Config, Role};
use ai_gateway_core::flow::{Io, LocalReply};
use ai_gateway_core::metrics::{Metric, MetricKind, PendingMetrics, PendingSeries, RequestSummary, Series};
use ai_gateway_core::ports::{Clock, HeaderMap, ResponseInfo, SharedStore, StoreError};
use ai_gateway_core::quota;
use ai_gateway_core::routing::next_random;
use attempt::AttemptHttp;
use listener::GatewayHttp;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(GatewayRoot::default()));
}}

fn log(level: LogLevel, message: &str) {
    calls::log(level, message);
}

fn now_ns() -> u64 {
    calls::get_current_time()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

/// How often each worker hands its gathered metrics to Envoy.
const METRICS_FLUSH_PERIOD: Duration = Duration::from_secs(1);

thread_local! {
    /// What finished requests added to the metrics since the last flush (one VM per worker thread).
    static PENDING_METRICS: RefCell<PendingMetrics> = RefCell::new(PendingMetrics::default());
    /// Set when Envoy gave no timer: every request flushes its own metrics.
    static FLUSH_EVERY_REQUEST: Cell<bool> = const { Cell::new(false) };
}

/// Gathers a finished request's counters (they reach Envoy at the next flush) and records its
/// histogram samples.
fn emit(summary: &RequestSummary) {
    PENDING_METRICS.with(|pending| pending.borrow_mut().add_request(summary, hand_over));
    if FLUSH_EVERY_REQUEST.with(Cell::get) {
        flush_metrics();
    }
}

/// One series' news to Envoy: the metric defined on first use (its id kept), then the counter's
/// increase or the histogram's samples.
fn hand_over(series: PendingSeries) {
    let id = match *series.host_id {
        Some(id) => id,
        None => {
            let kind = match series.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Histogram => MetricType::Histogram,
            };
            let Ok(id) = calls::define_metric(kind, series.name) else { return };
            *series.host_id = Some(id);
            id
        }
    };
    if series.total > 0 {
        let _ = calls::increment_metric(id, i64::try_from(series.total).unwrap_or(i64::MAX));
    }
    for &sample in series.samples {
        let _ = calls::record_metric(id, sample);
    }
}

/// Hands the gathered counters to Envoy, with this worker's count of host calls and callbacks.
fn flush_metrics() {
    PENDING_METRICS.with(|pending| {
        let mut pending = pending.borrow_mut();
        let (host_calls, callbacks) = calls::take_counts();
        pending.add(Series::plain(Metric::HostCalls), host_calls, &mut hand_over);
        pending.add(Series::plain(Metric::Callbacks), callbacks, &mut hand_over);
        pending.flush(hand_over);
    });
}

/// The host's clock, read at most once per callback and only if something needs the time.
#[derive(Default)]
struct HostClock(Cell<Option<u64>>);

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        // `Cell::get` copies: the time read is stored back, so the host is asked once.
        match self.0.get() {
            Some(now) => now,
            None => {
                let now = now_ns();
                self.0.set(Some(now));
                now
            }
        }
    }
}

impl ResponseInfo for HostClock {
    fn code_details(&self) -> Option<String> {
        calls::get_property(&["response", "code_details"])
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
        self.snapshot.get_or_insert_with(|| calls::get_map_bytes(map))
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
        if calls::set_map_value(self.map, name, Some(value)).is_err() {
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
            if calls::remove_map_value(self.map, name).is_err() {
                log(LogLevel::Warn, &format!("ai-gateway: could not remove header {name}"));
            }
            self.snapshot().retain(|(n, _)| n != name);
        }
    }

    fn names(&mut self) -> Vec<String> {
        self.snapshot().iter().map(|(name, _)| name.clone()).collect()
    }

    fn names_where(&mut self, wanted: &mut dyn FnMut(&str) -> bool) -> Vec<String> {
        self.snapshot().iter().filter(|(name, _)| wanted(name)).map(|(name, _)| name.clone()).collect()
    }
}

/// Envoy's shared data for this VM id.
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        calls::get_shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match calls::set_shared_data(key, value, cas) {
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
        let document = calls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX);
        match Config::parse(&document) {
            Ok(config) => {
                if config.role == Role::Downstream {
                    quota::create_missing(&HostStore, config.limits());
                }
                self.random_state.set(self.random_state.get() ^ now_ns());
                self.config = Some(Rc::new(config));
                if calls::set_tick_period(METRICS_FLUSH_PERIOD).is_err() {
                    log(LogLevel::Warn, "ai-gateway: no timer: metrics are flushed after every request");
                    FLUSH_EVERY_REQUEST.with(|every| every.set(true));
                }
                true
            }
            Err(error) => {
                log(LogLevel::Error, &error.to_string());
                false
            }
        }
    }

    fn on_tick(&mut self) {
        calls::callback();
        flush_metrics();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        calls::callback();
        if self.config.as_ref().is_some_and(|config| config.role == Role::Upstream) {
            return Some(Box::new(AttemptHttp::new(self.config.clone())));
        }
        let mut state = self.random_state.get();
        let random = next_random(&mut state);
        self.random_state.set(state);
        Some(Box::new(GatewayHttp::new(self.config.clone(), random)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Request trailers are not the provider's business (and are never read by the gateway): emptied
/// when the request has some. Touching the map of a request without trailers would add them.
fn clear_request_trailers(has_trailers: bool) {
    if has_trailers {
        let _ = calls::set_map(MapType::HttpRequestTrailers, vec![]);
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
    if calls::send_http_response(u32::from(reply.status), headers, &reply.body).is_err() {
        log(LogLevel::Error, "ai-gateway: could not send a local reply");
    }
    Action::Pause
}

/// What the request flow needs from the host in one callback.
fn io<'a>(headers: &'a mut HostHeaders, clock: &'a HostClock) -> Io<'a> {
    Io { headers, store: &HostStore, clock }
}
