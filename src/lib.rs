//! An AI model gateway as a proxy-wasm HTTP filter for Envoy: key auth, model routing, quotas, cache.

pub mod api_error;
pub mod auth;
pub mod cache;
pub mod config;
pub mod endpoint;
pub mod flow;
mod host;
pub mod metrics;
pub mod model_list;
pub mod ports;
pub mod quota;
pub mod request_body;
pub mod routing;
pub mod upstream_headers;
pub mod usage;

#[cfg(any(test, feature = "test-support"))]
pub mod fake;
