//! Where the harness finds the repository, the Envoy binary and the built `.wasm`.

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `$ENVOY_BIN`, else the project virtualenv's `envoy` (installed by `scripts/setup.sh`).
pub fn envoy_binary() -> PathBuf {
    std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

/// `$AI_GATEWAY_WASM`, else the release build of the filter.
pub fn filter_wasm() -> PathBuf {
    std::env::var_os("AI_GATEWAY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/release/ai_gateway.wasm"))
}
