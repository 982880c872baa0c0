//! Starts the end-to-end fixture (mock providers + Envoy with the filter) for tests written in other
//! languages: prints one JSON line with the gateway URL, the test keys and each mock's request log
//! URL, then runs until its standard input closes. `--cache` adds a response cache to the config;
//! `--fallback` adds fallback chains whose primaries fail (`Gateway::config_with_fallbacks`);
//! `--litellm PORT` adds models served by a LiteLLM proxy on that port (an independent implementation
//! of both APIs): `ll-claude` through its Anthropic Messages API, `ll-gpt` through its OpenAI API.

use ai_gateway_integration::fixture::{
    filter_config, Gateway, ALPHA, BETA, LIMITED_ANTHROPIC, LIMITED_OPENAI, ROTATED_NEW,
};
use serde_json::{json, Value};

/// The key the fixture's LiteLLM proxy accepts (its master key).
const LITELLM_KEY: &str = "sk-litellm-master";

/// The fixture's configuration plus two models served by LiteLLM, one through each of its APIs.
fn with_litellm(mut config: Value) -> Value {
    config["upstreams"]["litellm_anthropic"] =
        json!({ "cluster": "litellm", "api": "anthropic", "headers": { "x-api-key": LITELLM_KEY } });
    config["upstreams"]["litellm_openai"] = json!({ "cluster": "litellm", "api": "openai", "headers": { "authorization": format!("Bearer {LITELLM_KEY}") } });
    config["models"]["ll-claude"] = json!({ "upstream": "litellm_anthropic", "model": "mock-claude" });
    config["models"]["ll-gpt"] = json!({ "upstream": "litellm_openai", "model": "mock-gpt" });
    config
}
use std::io::Read;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gateway = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--cache"] => Gateway::start_with(Gateway::config_with_cache(json!({}))).await?,
        ["--fallback"] => Gateway::start_with_fallbacks(Gateway::config_with_fallbacks(filter_config()), None).await?,
        ["--litellm", port] => {
            let port: u16 = port.parse().map_err(|_| format!("--litellm takes a port, not {port:?}"))?;
            Gateway::start_with_setup(with_litellm(filter_config()), |setup| {
                setup.clusters.push(("litellm".to_owned(), port));
            })
            .await?
        }
        [] => Gateway::start().await?,
        other => {
            return Err(format!("unknown arguments {other:?}; the options are --cache, --fallback and --litellm PORT"))
        }
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
