//! The gateway's logic, host-free: key auth, model routing, quotas, usage, cache and the request
//! flow, reached only through the small traits in [`ports`]. The proxy-wasm adapter is the
//! `ai-gateway` crate (`src/host/`); this crate cannot call the host (it has no proxy-wasm
//! dependency).

pub mod api_error;
pub mod auth;
pub mod body_format;
pub mod cache;
pub mod config;
pub mod endpoint;
pub mod flow;
pub mod metrics;
pub mod model_list;
pub mod ports;
pub mod quota;
pub mod request_body;
pub mod routing;
pub mod translate;
pub mod upstream_headers;
pub mod upstream_path;
pub mod usage;

#[cfg(any(test, feature = "test-support"))]
pub mod fake;
