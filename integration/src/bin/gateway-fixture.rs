//! Starts the end-to-end fixture (mock providers + Envoy with the filter) for tests written in other
//! languages: prints one JSON line with the gateway URL, the test keys and each mock's request log
//! URL, then runs until its standard input closes. `--cache` adds a response cache to the config.

use ai_gateway_integration::fixture::{Gateway, ALPHA, BETA, LIMITED_ANTHROPIC, LIMITED_OPENAI, ROTATED_NEW};
use serde_json::json;
use std::io::Read;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let gateway = match std::env::args().nth(1).as_deref() {
        Some("--cache") => Gateway::start_with(Gateway::config_with_cache(json!({}))).await?,
        Some(other) => return Err(format!("unknown argument {other:?}; the only option is --cache")),
        None => Gateway::start().await?,
    };
    let log_url =
        |mock: &ai_gateway_integration::mock_upstream::MockUpstream| format!("http://{}/_mock/requests", mock.addr);
    let description = json!({
        "url": gateway.url(""),
        "admin_url": format!("http://127.0.0.1:{}", gateway.envoy.admin_port),
        "keys": { "alpha": ALPHA, "beta": BETA, "rotated": ROTATED_NEW,
                  "limited_openai": LIMITED_OPENAI, "limited_anthropic": LIMITED_ANTHROPIC },
        "mocks": { "openai": log_url(&gateway.openai), "openai_b": log_url(&gateway.openai_b),
                   "anthropic": log_url(&gateway.anthropic) },
    });
    println!("{description}");
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .map_err(|e| e.to_string())?;
    drop(gateway);
    Ok(())
}
