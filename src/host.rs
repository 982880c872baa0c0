//! The only module that calls into the proxy-wasm host: contexts, header maps, bodies, logging.
//! It applies the decisions of [`crate::flow`] and holds no logic of its own.

use crate::config::Config;
use crate::flow::{BodyAction, HeadersAction, LocalReply, RequestFlow};
use crate::ports::HeaderMap;
use crate::routing::next_random;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::Cell;
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

/// The request headers of the current HTTP context, read and written through the host.
struct HostRequestHeaders;

impl HeaderMap for HostRequestHeaders {
    fn get(&self, name: &str) -> Option<String> {
        // Bytes, not String: the SDK's String variant panics on non-UTF-8 header values.
        let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok()??;
        Some(String::from_utf8_lossy(&value).into_owned())
    }

    fn set(&mut self, name: &str, value: &str) {
        if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err() {
            log(LogLevel::Warn, &format!("ai-gateway: could not set request header {name}"));
        }
    }

    fn remove(&mut self, name: &str) {
        if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
            log(LogLevel::Warn, &format!("ai-gateway: could not remove request header {name}"));
        }
    }

    fn names(&self) -> Vec<String> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .map(|map| map.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default()
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
                let seed = hostcalls::get_current_time()
                    .ok()
                    .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |elapsed| elapsed.as_nanos() as u64);
                self.random_state.set(self.random_state.get() ^ seed);
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
        let mut state = self.random_state.get();
        let random = next_random(&mut state);
        self.random_state.set(state);
        Some(Box::new(GatewayHttp { flow: RequestFlow::new(self.config.clone(), random) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct GatewayHttp {
    flow: RequestFlow,
}

impl Context for GatewayHttp {}

impl HttpContext for GatewayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.flow.on_request_headers(&mut HostRequestHeaders, end_of_stream) {
            HeadersAction::ReadBody => Action::Pause,
            HeadersAction::Respond(reply) => respond(reply),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size).ok().flatten().unwrap_or_default();
        match self.flow.on_request_body(&mut HostRequestHeaders, &body) {
            BodyAction::Forward { new_body } => {
                if let Some(new_body) = new_body {
                    if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, body_size, &new_body).is_err() {
                        log(LogLevel::Error, "ai-gateway: could not replace the request body");
                    }
                }
                if hostcalls::call_foreign_function("clear_route_cache", None).is_err() {
                    log(
                        LogLevel::Error,
                        "ai-gateway: clear_route_cache failed; the route may ignore the cluster header",
                    );
                }
                Action::Continue
            }
            BodyAction::Respond(reply) => respond(reply),
        }
    }
}

/// Sends a local reply and stops the request from going upstream.
fn respond(reply: LocalReply) -> Action {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    if hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body)).is_err() {
        log(LogLevel::Error, "ai-gateway: could not send a local reply");
    }
    Action::Pause
}
