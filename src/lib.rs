//! The ai-gateway filter as Envoy loads it: the proxy-wasm adapter over `ai_gateway_core`, which
//! makes every decision. This crate only carries those decisions out on the host.

mod host;
