//! Host-side harness for the ai-gateway filter: a mock model provider, a real-Envoy launcher and
//! the helpers the end-to-end tests and the demo share.

pub mod envoy;
pub mod fixture;
pub mod mock_tools;
pub mod mock_upstream;
pub mod paths;
pub mod rls;
