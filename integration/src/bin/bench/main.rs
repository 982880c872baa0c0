//! The benchmark: plain Envoy against Envoy with the filter (auth and routing; plus limits; a cache
//! hit; a stream with usage counted; an OpenAI client translated to an Anthropic provider, JSON and a
//! 200-event stream; prompts of 1, 32 and 256 KB; a 1,000-event stream) and LiteLLM's proxy, all on
//! the same fixed upstream, measured in one run with the configurations interleaved so that machine
//! noise hits them alike; then Envoy's memory per request in flight, and the cache key's hash in V8.
//!
//! Run it through `./scripts/bench.sh`, which installs `oha` and LiteLLM and builds everything.
//! Environment: `BENCH_ROUNDS` (3), `BENCH_SECONDS` per measurement (5), `BENCH_CONNECTIONS` (32),
//! `BENCH_RATE` for the fixed-rate latency runs (20/s), `BENCH_ONLY` (e.g. `a,b,d`: a subset; `a`
//! is always measured, as the baseline), `BENCH_CONCURRENCY` (Envoy's workers, 1), `OHA`, `LITELLM`
//! (binaries).

mod memory;

use ai_gateway_core::auth::digest;
use ai_gateway_core::config::Config;
use ai_gateway_core::metrics::{CALLBACKS_METRIC, HOST_CALLS_METRIC};
use ai_gateway_core::quota::global::DEFAULT_DOMAIN;
use ai_gateway_integration::envoy::{http_get, Envoy, EnvoySetup};
use ai_gateway_integration::paths::repo_root;
use ai_gateway_integration::rls::{service_config as service_config_yaml, RateLimitService, Redis};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-bench-key";
const LITELLM_KEY: &str = "sk-bench-master";
const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| repo_root().join(default))
}

/// A fixed Anthropic message at `/v1/messages` and, with `x-bench-stream`, a 200-event Anthropic stream.
fn anthropic_answers() -> (String, String) {
    let message = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9}}"#;
    let mut stream = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-bench\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for i in 0..196 {
        stream.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}\n\n"
        ));
    }
    stream.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":196}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    (message.to_owned(), stream)
}

/// A fixed chat completion (or, with `x-bench-stream`, a fixed SSE stream with usage) from Envoy's
/// `direct_response`, so the upstream is never the bottleneck; Anthropic answers at `/v1/messages`.
fn upstream_bootstrap() -> Value {
    let mut stream = String::new();
    for word in ["Hello!", " How", " can", " I", " help", " you", " today?"] {
        stream.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    let usage_event = "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\ndata: [DONE]\n\n";
    // A long answer: 1,000 events (about 230 KB), the last with usage.
    let mut long_stream = String::new();
    for i in 0..999 {
        long_stream.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    long_stream.push_str(usage_event);
    stream.push_str(usage_event);
    let answer = |body: &str, content_type: &str| json!({ "status": 200, "body": { "inline_string": body } , "content_type": content_type });
    let (json_answer, sse_answer) = (answer(CHAT, "application/json"), answer(&stream, "text/event-stream"));
    let (message, message_stream) = anthropic_answers();
    let (message_answer, message_sse) =
        (answer(&message, "application/json"), answer(&message_stream, "text/event-stream"));
    let streamed = json!([ { "name": "x-bench-stream", "present_match": true } ]);
    let long = json!([ { "name": "x-bench-events", "present_match": true } ]);
    let long_answer = answer(&long_stream, "text/event-stream");
    let route = |matcher: Value, answer: &Value| {
        json!({ "match": matcher, "direct_response": { "status": 200, "body": answer["body"] },
                "response_headers_to_add": [ { "header": { "key": "content-type", "value": answer["content_type"] } } ] })
    };
    json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": { "listeners": [ {
            "name": "upstream",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [ { "filters": [ {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "route_config": { "max_direct_response_body_size_bytes": 1048576,
                                      "virtual_hosts": [ { "name": "all", "domains": ["*"], "routes": [
                        // A provider that is down: the primary of (i)'s fallback chain.
                        { "match": { "prefix": "/fail/" }, "direct_response": { "status": 503, "body": { "inline_string":
                            "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}" } } },
                        route(json!({ "prefix": "/v1/messages", "headers": streamed }), &message_sse),
                        route(json!({ "prefix": "/v1/messages" }), &message_answer),
                        route(json!({ "prefix": "/", "headers": long }), &long_answer),
                        route(json!({ "prefix": "/", "headers": streamed }), &sse_answer),
                        route(json!({ "prefix": "/" }), &json_answer)
                    ] } ] },
                    // Read the whole request before answering, as a real provider does; answering
                    // early makes the proxy close the connection after every request.
                    "http_filters": [
                        // For the memory measurements: `x-bench-hold` holds a request two seconds
                        // before it is read; `x-bench-trickle` sends the answer at 1 KiB/s.
                        { "name": "envoy.filters.http.fault", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                            "delay": { "fixed_delay": "2s", "percentage": { "numerator": 100 } },
                            "headers": [ { "name": "x-bench-hold", "present_match": true } ] } },
                        { "name": "envoy.filters.http.fault.trickle", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                            "response_rate_limit": { "fixed_limit": { "limit_kbps": 1 }, "percentage": { "numerator": 100 } },
                            "headers": [ { "name": "x-bench-trickle", "present_match": true } ] } },
                        { "name": "envoy.filters.http.buffer", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                            "max_request_bytes": 4194304 } },
                        { "name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }
                    ]
                }
            } ] } ]
        } ] }
    })
}

/// The filter's configuration for the benchmark: one key, the model renamed, optional extras.
fn filter_config(extra: Value) -> Value {
    let hex: String = digest(KEY).iter().map(|b| format!("{b:02x}")).collect();
    let mut config = json!({
        "keys": [ { "id": "bench", "sha256": hex } ],
        "upstreams": {
            "openai": { "cluster": "upstream", "headers": { "authorization": "Bearer sk-provider" } },
            "openai-stream": { "cluster": "upstream", "headers": { "authorization": "Bearer sk-provider", "x-bench-stream": "1" } },
            "openai-events": { "cluster": "upstream", "headers": { "authorization": "Bearer sk-provider", "x-bench-events": "1000" } },
            "openai-hold": { "cluster": "upstream", "headers": { "authorization": "Bearer sk-provider", "x-bench-hold": "1" } },
            "openai-trickle": { "cluster": "upstream", "headers": { "authorization": "Bearer sk-provider", "x-bench-events": "1000", "x-bench-trickle": "1" } },
            "anthropic": { "cluster": "upstream", "api": "anthropic", "headers": { "x-api-key": "sk-provider" } },
            "anthropic-stream": { "cluster": "upstream", "api": "anthropic", "headers": { "x-api-key": "sk-provider", "x-bench-stream": "1" } },
            "failing": { "cluster": "upstream_failing", "path_prefix": "/fail/v1", "headers": { "authorization": "Bearer sk-provider" } },
            "fallback": { "cluster": "upstream_fallback", "headers": { "authorization": "Bearer sk-provider" } }
        },
        "models": {
            "gpt-4o-mini": { "upstream": "openai", "model": "gpt-4o-mini-2024-07-18" },
            "gpt-4o-mini-stream": { "upstream": "openai-stream", "model": "gpt-4o-mini-2024-07-18" },
            "gpt-4o-mini-events": { "upstream": "openai-events", "model": "gpt-4o-mini-2024-07-18" },
            "gpt-4o-mini-hold": { "upstream": "openai-hold", "model": "gpt-4o-mini-2024-07-18" },
            "gpt-4o-mini-trickle": { "upstream": "openai-trickle", "model": "gpt-4o-mini-2024-07-18" },
            "claude": { "upstream": "anthropic", "model": "claude-bench" },
            "claude-stream": { "upstream": "anthropic-stream", "model": "claude-bench" },
            "gpt-4o-mini-fallback": { "upstream": "failing", "model": "gpt-4o-mini-2024-07-18",
                                      "fallbacks": [ { "upstream": "fallback", "model": "gpt-4o-mini-2024-07-18" } ],
                                      "fallback_cluster": "bench_chain" }
        }
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

/// Envoy under test, with `BENCH_CONCURRENCY` workers (one by default).
fn start_envoy(setup: EnvoySetup) -> Result<Envoy, String> {
    let concurrency = u32::try_from(setting("BENCH_CONCURRENCY", 1)).unwrap_or(1).max(1);
    Envoy::start(&EnvoySetup { concurrency, ..setup })
}

/// A chat request for `model` of about `size` bytes (the prompt padded with prose).
fn chat_body(model: &str, size: usize, stream: bool) -> String {
    let mut body = json!({ "model": model, "max_tokens": 64, "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] });
    if stream {
        body["stream"] = json!(true);
    }
    let bare = body.to_string().len();
    if size > bare {
        let filler: String =
            "The quick brown fox jumps over the lazy dog. ".chars().cycle().take(size - bare).collect();
        body["messages"][0]["content"] = json!(filler);
    }
    body.to_string()
}

/// Envoy with the filter in global quota mode, its rate limit service and Redis.
struct GlobalQuota {
    envoy: Envoy,
    _service: RateLimitService,
    _redis: Redis,
    _dir: tempfile::TempDir,
}

impl GlobalQuota {
    fn start(config: &Value, clusters: &[(&str, u16)]) -> Result<GlobalQuota, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let parsed = Config::parse(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
        let service_config = dir.path().join("ratelimit.yaml");
        std::fs::write(&service_config, service_config_yaml(&parsed, DEFAULT_DOMAIN)?).map_err(|e| e.to_string())?;
        let redis = Redis::start()?;
        let service = RateLimitService::start(&service_config, redis.port, 0)?;
        let mut setup = EnvoySetup::new(config.clone(), clusters);
        setup.rate_limit_service = Some((service.port, false));
        let envoy = start_envoy(setup)?;
        Ok(GlobalQuota { envoy, _service: service, _redis: redis, _dir: dir })
    }
}

/// LiteLLM's proxy with a master key (docs/performance.md says why not a virtual key).
struct LiteLlm {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LiteLlm {
    fn start(upstream_port: u16) -> Result<LiteLlm, String> {
        let binary = tool("LITELLM", ".bench/venv/bin/litellm");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config = dir.path().join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini-2024-07-18\n      api_base: http://127.0.0.1:{upstream_port}/v1\n      api_key: sk-provider\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let log = std::fs::File::create(dir.path().join("litellm.log")).map_err(|e| e.to_string())?;
        let mut command = Command::new(&binary);
        command
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"])
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill LiteLLM if we die first.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("could not start LiteLLM at {}: {e}", binary.display()))?;
        let mut litellm = LiteLlm { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(180);
        while http_get(port, "/health/liveliness").is_none() {
            if Instant::now() > deadline || litellm.child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(litellm._dir.path().join("litellm.log")).unwrap_or_default();
                return Err(format!("LiteLLM did not start:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(litellm)
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds used so far by a process and its children (threads included).
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = |pid: &str| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        // After the command name: state is field 3, utime 14 and stime 15 (1-based, whole line).
        fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    let mut total = ticks(&pid.to_string());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).unwrap_or_default();
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned));
        if parent.as_deref() == Some(pid.to_string().as_str()) {
            total += ticks(&name);
        }
    }
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    total as f64 / per_second
}

/// The prompt sizes measured, with the labels of their plain Envoy and (b) configurations.
const SIZES: [(usize, &str, &str); 3] =
    [(1024, "a-1k", "b-1k"), (32 * 1024, "a-32k", "b-32k"), (256 * 1024, "a-256k", "b-256k")];

fn size_descriptions(size: usize) -> (&'static str, &'static str) {
    match size / 1024 {
        1 => ("Envoy, no filter: a 1 KB prompt", "(b) with a 1 KB prompt"),
        32 => ("Envoy, no filter: a 32 KB prompt", "(b) with a 32 KB prompt"),
        _ => ("Envoy, no filter: a 256 KB prompt", "(b) with a 256 KB prompt"),
    }
}

/// One configuration under test.
struct Scenario {
    label: &'static str,
    description: &'static str,
    url: String,
    key: &'static str,
    /// The request body, in a file (prompts can be larger than a command-line argument may be).
    body_file: PathBuf,
    /// Headers sent besides the credential and content type.
    headers: Vec<(&'static str, &'static str)>,
    pid: u32,
    /// The admin port of an Envoy with the filter (its host-call counters are read there).
    admin_port: Option<u16>,
}

#[derive(Default, Clone)]
struct Figures {
    throughput: Vec<f64>,
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
    cpu_us: Vec<f64>,
    /// The filter's host calls and Envoy's callbacks into it, per request.
    host_calls: Vec<f64>,
    callbacks: Vec<f64>,
    errors: u64,
}

/// The filter's counts of host calls and callbacks so far, once its worker has flushed them (every
/// second).
fn filter_counts(admin_port: u16) -> (f64, f64) {
    std::thread::sleep(Duration::from_millis(1_500));
    let stats = http_get(admin_port, "/stats?filter=ai_gateway_(host_calls|callbacks)_total").unwrap_or_default();
    let value = |name: &str| {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("wasmcustom.{name}: ")))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value(HOST_CALLS_METRIC), value(CALLBACKS_METRIC))
}

/// Runs oha; returns (requests per second, p50 ms, p99 ms, successful requests, non-200 answers).
fn oha(
    scenario: &Scenario,
    seconds: u64,
    connections: u64,
    rate: Option<u64>,
) -> Result<(f64, f64, f64, u64, u64), String> {
    let mut command = Command::new(tool("OHA", ".bench/bin/oha"));
    command
        .args(["--no-tui", "--output-format", "json", "-z", &format!("{seconds}s"), "-c", &connections.to_string()])
        .args([
            "-m",
            "POST",
            "-H",
            &format!("authorization: Bearer {}", scenario.key),
            "-H",
            "content-type: application/json",
        ])
        .arg("-D")
        .arg(&scenario.body_file);
    for (name, value) in &scenario.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let output = command.arg(&scenario.url).output().map_err(|e| format!("could not run oha: {e}"))?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("oha's output is not JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)))?;
    let statuses = report["statusCodeDistribution"].as_object().cloned().unwrap_or_default();
    let ok = statuses.get("200").and_then(Value::as_u64).unwrap_or(0);
    let not_ok: u64 = statuses.iter().filter(|(code, _)| *code != "200").filter_map(|(_, n)| n.as_u64()).sum();
    let seconds_to_ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok((
        ok as f64 / seconds as f64,
        seconds_to_ms(&report["latencyPercentiles"]["p50"]),
        seconds_to_ms(&report["latencyPercentiles"]["p99"]),
        ok,
        not_ok,
    ))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

fn main() -> Result<(), String> {
    let rounds = setting("BENCH_ROUNDS", 3);
    let seconds = setting("BENCH_SECONDS", 5);
    let connections = setting("BENCH_CONNECTIONS", 32);
    // Well below LiteLLM's saturation (about 60/s here), so that latency is not queueing.
    let rate = setting("BENCH_RATE", 20);

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let upstream_config = dir.path().join("upstream.json");
    std::fs::write(&upstream_config, upstream_bootstrap().to_string()).map_err(|e| e.to_string())?;
    let upstream = Envoy::start_with(&upstream_config, 1, dir)?;
    let clusters = [("upstream", upstream.port)];
    eprintln!("upstream (Envoy direct_response) on port {}", upstream.port);

    let plain = start_envoy(EnvoySetup::plain("upstream", upstream.port))?;
    // The failing primary and its fallback of (i) have clusters of their own, on the same upstream.
    let chain_clusters =
        [("upstream", upstream.port), ("upstream_failing", upstream.port), ("upstream_fallback", upstream.port)];
    let routing = start_envoy(EnvoySetup::new(filter_config(json!({})), &chain_clusters))?;
    let mut limited_config = filter_config(json!({}));
    limited_config["keys"][0]["limits"] =
        json!({ "requests_per_second": 1_000_000_000u64, "tokens_per_minute": 4_000_000_000u64 });
    let limited = start_envoy(EnvoySetup::new(limited_config.clone(), &clusters))?;
    let cached = start_envoy(EnvoySetup::new(filter_config(json!({ "cache": {} })), &clusters))?;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let selected = |label: &str| label == "a" || only.is_empty() || only.split(',').any(|l| l.trim() == label);
    // (j): (c)'s limits counted by the global rate limit service (the test service on Redis, on
    // this machine), through Envoy's rate limit filter.
    let global = if selected("j") {
        let mut config = limited_config;
        config["quota"] = json!({ "mode": "global" });
        Some(GlobalQuota::start(&config, &clusters)?)
    } else {
        None
    };
    let litellm = if selected("f") {
        eprintln!("starting LiteLLM (this takes a while)...");
        Some(LiteLlm::start(upstream.port)?)
    } else {
        None
    };

    let chat = json!({ "model": "gpt-4o-mini", "max_tokens": 64, "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] }).to_string();
    let stream = json!({ "model": "gpt-4o-mini-stream", "stream": true, "max_tokens": 64,
                         "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] })
    .to_string();
    let translated = json!({ "model": "claude", "max_tokens": 64, "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] }).to_string();
    let translated_stream = json!({ "model": "claude-stream", "stream": true, "max_tokens": 64,
                                    "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] })
    .to_string();
    let failing_over = json!({ "model": "gpt-4o-mini-fallback", "max_tokens": 64, "messages": [ { "role": "user", "content": "Hello! Say hi back." } ] }).to_string();
    let url = |port: u16| format!("http://127.0.0.1:{port}/v1/chat/completions");
    let bodies = tempfile::tempdir().map_err(|e| e.to_string())?;
    let body_file = |name: &str, body: &str| -> PathBuf {
        let path = bodies.path().join(name);
        let _ = std::fs::write(&path, body);
        path
    };
    let scenarios = [
        Scenario {
            label: "a",
            description: "Envoy, no filter",
            url: url(plain.port),
            key: KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: plain.pid,
            admin_port: None,
        },
        Scenario {
            label: "b",
            description: "filter: auth + routing (body read, model rewritten)",
            url: url(routing.port),
            key: KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: routing.pid,
            admin_port: Some(routing.admin_port),
        },
        Scenario {
            label: "c",
            description: "(b) + request and token limits",
            url: url(limited.port),
            key: KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: limited.pid,
            admin_port: Some(limited.admin_port),
        },
        Scenario {
            label: "d",
            description: "filter: cache hit",
            url: url(cached.port),
            key: KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: cached.pid,
            admin_port: Some(cached.admin_port),
        },
        Scenario {
            label: "e",
            description: "(c), streamed response, usage counted",
            url: url(limited.port),
            key: KEY,
            body_file: body_file("stream", &stream),
            headers: Vec::new(),
            pid: limited.pid,
            admin_port: Some(limited.admin_port),
        },
        Scenario {
            label: "g",
            description: "(b), OpenAI client translated to an Anthropic provider",
            url: url(routing.port),
            key: KEY,
            body_file: body_file("translated", &translated),
            headers: Vec::new(),
            pid: routing.pid,
            admin_port: Some(routing.admin_port),
        },
        Scenario {
            label: "h",
            description: "(g), a 200-event stream translated event by event",
            url: url(routing.port),
            key: KEY,
            body_file: body_file("translated_stream", &translated_stream),
            headers: Vec::new(),
            pid: routing.pid,
            admin_port: Some(routing.admin_port),
        },
        Scenario {
            label: "i",
            description: "(b), the primary answers 503 every time: Envoy retries on the fallback",
            url: url(routing.port),
            key: KEY,
            body_file: body_file("failing_over", &failing_over),
            headers: Vec::new(),
            pid: routing.pid,
            admin_port: Some(routing.admin_port),
        },
    ];
    let mut scenarios: Vec<Scenario> = scenarios.into_iter().collect();
    // Real sizes: prompts of 1, 32 and 256 KB through plain Envoy and (b); a 1,000-event stream
    // through plain Envoy and (c) (its usage read from the last event).
    for (size, plain_label, filter_label) in SIZES {
        let body = chat_body("gpt-4o-mini", size, false);
        let file = body_file(plain_label, &body);
        let (plain_description, filter_description) = size_descriptions(size);
        scenarios.push(Scenario {
            label: plain_label,
            description: plain_description,
            url: url(plain.port),
            key: KEY,
            body_file: file.clone(),
            headers: Vec::new(),
            pid: plain.pid,
            admin_port: None,
        });
        scenarios.push(Scenario {
            label: filter_label,
            description: filter_description,
            url: url(routing.port),
            key: KEY,
            body_file: file,
            headers: Vec::new(),
            pid: routing.pid,
            admin_port: Some(routing.admin_port),
        });
    }
    scenarios.push(Scenario {
        label: "a-sse",
        description: "Envoy, no filter: a 1,000-event stream (230 KB)",
        url: url(plain.port),
        key: KEY,
        body_file: body_file("a-sse", &chat_body("gpt-4o-mini", 0, true)),
        headers: vec![("x-bench-events", "1000")],
        pid: plain.pid,
        admin_port: None,
    });
    scenarios.push(Scenario {
        label: "e-sse",
        description: "(c), a 1,000-event stream, usage counted",
        url: url(limited.port),
        key: KEY,
        body_file: body_file("e-sse", &chat_body("gpt-4o-mini-events", 0, true)),
        headers: Vec::new(),
        pid: limited.pid,
        admin_port: Some(limited.admin_port),
    });
    scenarios.retain(|scenario| selected(scenario.label));
    if let Some(global) = &global {
        scenarios.push(Scenario {
            label: "j",
            description: "(c) with the limits counted by a global rate limit service (test service, Redis)",
            url: url(global.envoy.port),
            key: KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: global.envoy.pid,
            admin_port: Some(global.envoy.admin_port),
        });
    }
    if let Some(litellm) = &litellm {
        scenarios.push(Scenario {
            label: "f",
            description: "LiteLLM proxy (master key), same upstream",
            url: url(litellm.port),
            key: LITELLM_KEY,
            body_file: body_file("chat", &chat),
            headers: Vec::new(),
            pid: litellm.child.id(),
            admin_port: None,
        });
    }

    let mut figures = vec![Figures::default(); scenarios.len()];
    for round in 1..=rounds {
        for (scenario, figures) in scenarios.iter().zip(figures.iter_mut()) {
            eprintln!("round {round}/{rounds}: ({}) {}", scenario.label, scenario.description);
            let counts_before = scenario.admin_port.map(filter_counts);
            let cpu_before = cpu_seconds(scenario.pid);
            let (throughput, _, _, ok, not_ok) = oha(scenario, seconds, connections, None)?;
            let cpu = cpu_seconds(scenario.pid) - cpu_before;
            if let (Some(port), Some((calls_before, callbacks_before))) = (scenario.admin_port, counts_before) {
                let (calls, callbacks) = filter_counts(port);
                let requests = (ok + not_ok).max(1) as f64;
                figures.host_calls.push((calls - calls_before) / requests);
                figures.callbacks.push((callbacks - callbacks_before) / requests);
            }
            let (_, p50, p99, _, rate_not_ok) = oha(scenario, seconds, rate.min(connections).max(1), Some(rate))?;
            figures.throughput.push(throughput);
            figures.p50_ms.push(p50);
            figures.p99_ms.push(p99);
            figures.cpu_us.push(cpu / ok.max(1) as f64 * 1e6);
            figures.errors += not_ok + rate_not_ok;
        }
    }

    let memory = match selected("m") {
        true => Some(measure_memory(&[&plain, &routing, &limited], &body_file)?),
        false => None,
    };
    let hashes = if selected("k") { cache_key_hashes() } else { Vec::new() };
    let mut report = render(&scenarios, &figures, rounds, seconds, connections, rate);
    report.push_str(&render_extras(memory.as_ref(), &hashes));
    println!("{report}");
    let out = repo_root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("report.md"), &report);
    eprintln!("report written to {}", Path::new("target/bench/report.md").display());
    drop((plain, routing, limited, cached, global, litellm, upstream));
    Ok(())
}

/// Envoy's added resident memory per request in flight, in bytes: plain and with the filter.
struct MemoryFigures {
    prompt: (f64, f64),
    stream: (f64, f64),
}

/// Held 256 KB prompts (200 at once) through plain Envoy and (b); trickled 1,000-event streams
/// (1,000 at once) through plain Envoy and (c).
fn measure_memory(envoys: &[&Envoy; 3], body_file: &dyn Fn(&str, &str) -> PathBuf) -> Result<MemoryFigures, String> {
    let [plain, routing, limited] = *envoys;
    let oha = tool("OHA", ".bench/bin/oha");
    let url = |port: u16| format!("http://127.0.0.1:{port}/v1/chat/completions");
    let measure = |envoy: &Envoy, body: &PathBuf, headers: &[(&str, &str)], concurrency, seconds| {
        eprintln!("memory: {concurrency} requests in flight on port {}", envoy.port);
        let url = url(envoy.port);
        let load = memory::Load { oha: &oha, url: &url, key: KEY, body_file: body, headers, concurrency, seconds };
        memory::per_request_in_flight(envoy.pid, &load)
    };
    let held = |model| body_file(&format!("memory-{model}"), &chat_body(model, 256 * 1024, false));
    let trickled = |model| body_file(&format!("memory-{model}"), &chat_body(model, 0, true));
    let stream_headers = [("x-bench-events", "1000"), ("x-bench-trickle", "1")];
    Ok(MemoryFigures {
        prompt: (
            measure(plain, &held("gpt-4o-mini"), &[("x-bench-hold", "1")], 200, 4)?,
            measure(routing, &held("gpt-4o-mini-hold"), &[], 200, 4)?,
        ),
        stream: (
            measure(plain, &trickled("gpt-4o-mini"), &stream_headers, 1000, 5)?,
            measure(limited, &trickled("gpt-4o-mini-trickle"), &[], 1000, 5)?,
        ),
    })
}

/// The cache key's hash in V8: `core/examples/cache_key_hash.rs` built for wasm32-wasip1 (by
/// `./scripts/bench.sh`) and run by Node (V8) through WASI. Rows: (prompt bytes, SHA-256 µs,
/// BLAKE3 µs); none when the module or Node is missing.
fn cache_key_hashes() -> Vec<(u64, f64, f64)> {
    const RUN_WASI: &str = "import { readFile } from 'node:fs/promises'; import { WASI } from 'node:wasi'; \
        const wasi = new WASI({ version: 'preview1', args: [], env: {} }); \
        const module = await WebAssembly.compile(await readFile(process.env.CACHE_KEY_HASH_WASM)); \
        wasi.start(await WebAssembly.instantiate(module, wasi.getImportObject()));";
    let module = repo_root().join("target/wasm32-wasip1/release/examples/cache_key_hash.wasm");
    eprintln!("cache key hash in V8 (Node): {}", module.display());
    let output = Command::new("node")
        .args(["--no-warnings", "--input-type=module", "-e", RUN_WASI])
        .env("CACHE_KEY_HASH_WASM", &module)
        .output();
    let Ok(output) = output else { return Vec::new() };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// The memory and cache-key sections of the report.
fn render_extras(memory: Option<&MemoryFigures>, hashes: &[(u64, f64, f64)]) -> String {
    let mut out = String::new();
    if let Some(memory) = memory {
        let kib = |bytes: f64| bytes / 1024.0;
        out.push_str(&format!(
            "\nMemory: Envoy's added resident memory per request in flight. 256 KB prompts (200 at once, held 2 s by the upstream): plain {:.0} KiB, (b) {:.0} KiB, the filter's share {:.0} KiB. \
             1,000-event streams (1,000 at once, trickled at 1 KiB/s): plain {:.1} KiB, (c) {:.1} KiB, the filter's share {:.1} KiB.\n",
            kib(memory.prompt.0),
            kib(memory.prompt.1),
            kib(memory.prompt.1 - memory.prompt.0),
            kib(memory.stream.0),
            kib(memory.stream.1),
            kib(memory.stream.1 - memory.stream.0),
        ));
    }
    if !hashes.is_empty() {
        out.push_str("\nCache key hash in V8 (Node's, through WASI), µs per key:");
        for (bytes, sha256, blake3) in hashes {
            out.push_str(&format!(
                " {} KB: SHA-256 {sha256:.1}, BLAKE3 {blake3:.1} ({:.1}x);",
                bytes / 1024,
                sha256 / blake3.max(f64::MIN_POSITIVE)
            ));
        }
        out.push('\n');
    }
    out
}

fn render(
    scenarios: &[Scenario],
    figures: &[Figures],
    rounds: u64,
    seconds: u64,
    connections: u64,
    rate: u64,
) -> String {
    let base = &figures[0];
    let (base_rps, base_p50, base_p99, base_cpu) =
        (median(&base.throughput), median(&base.p50_ms), median(&base.p99_ms), median(&base.cpu_us));
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let concurrency = setting("BENCH_CONCURRENCY", 1).max(1);
    let workers = if concurrency == 1 { "one worker".to_owned() } else { format!("{concurrency} workers") };
    let mut out = format!(
        "Benchmark: {rounds} interleaved rounds; per round and configuration, {seconds} s at saturation ({connections} connections) \
         and {seconds} s at a fixed {rate} requests/s. Median of rounds, [min-max] spread, (ratio to a).\n\
         Machine: {machine}, {cores} cores. Proxies under test run with {workers} (--concurrency {concurrency}); oha and the upstream share the machine.\n\n\
         Host calls and callbacks: the filter's calls into Envoy and Envoy's calls into the filter per request, counted by the filter.\n\n\
         | | configuration | throughput (req/s) | p50 at {rate}/s (ms) | p99 at {rate}/s (ms) | CPU per request (µs) | host calls / callbacks | non-200 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for (scenario, f) in scenarios.iter().zip(figures) {
        let cell = |values: &[f64], base: f64, digits: usize| {
            let (lo, hi) = spread(values);
            let m = median(values);
            format!("{m:.digits$} [{lo:.digits$}-{hi:.digits$}] ({:.2}x)", m / base)
        };
        let counts = match f.host_calls.is_empty() {
            true => "-".to_owned(),
            false => format!("{:.1} / {:.1}", median(&f.host_calls), median(&f.callbacks)),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            scenario.label,
            scenario.description,
            cell(&f.throughput, base_rps, 0),
            cell(&f.p50_ms, base_p50, 3),
            cell(&f.p99_ms, base_p99, 3),
            cell(&f.cpu_us, base_cpu, 1),
            counts,
            f.errors
        ));
    }
    let by_label = |label: &str| scenarios.iter().position(|s| s.label == label).and_then(|i| figures.get(i));
    if let (Some(b), Some(g), Some(h)) = (by_label("b"), by_label("g"), by_label("h")) {
        let cpu = |x: &Figures| median(&x.cpu_us);
        out.push_str(&format!(
            "\nTranslation: CPU per request (g) {:.1} µs, (h) {:.1} µs, against (b) {:.1} µs: +{:.1} µs for a translated JSON answer, +{:.1} µs for a translated 200-event stream.\n",
            cpu(g),
            cpu(h),
            cpu(b),
            cpu(g) - cpu(b),
            cpu(h) - cpu(b),
        ));
    }
    let sizes: Vec<String> = SIZES
        .iter()
        .filter_map(|(size, plain_label, filter_label)| {
            let (plain, filter) = (by_label(plain_label)?, by_label(filter_label)?);
            let ratio = median(&filter.throughput) / median(&plain.throughput);
            let added = median(&filter.cpu_us) - median(&plain.cpu_us);
            Some(format!("{} KB {ratio:.2} (+{added:.1} µs of CPU)", size / 1024))
        })
        .collect();
    if !sizes.is_empty() {
        out.push_str(&format!(
            "\nReal sizes: (b)'s throughput as a ratio to plain Envoy with the same prompt: {}.\n",
            sizes.join(", ")
        ));
    }
    if let (Some(plain), Some(e)) = (by_label("a-sse"), by_label("e-sse")) {
        out.push_str(&format!(
            "\n1,000-event stream: (c) with usage counted {:.2} of plain Envoy's throughput; CPU per request {:.1} µs against {:.1} µs (+{:.2} µs per event).\n",
            median(&e.throughput) / median(&plain.throughput),
            median(&e.cpu_us),
            median(&plain.cpu_us),
            (median(&e.cpu_us) - median(&plain.cpu_us)) / 1000.0,
        ));
    }
    if let (Some(c), Some(j)) = (by_label("c"), by_label("j")) {
        out.push_str(&format!(
            "\nGlobal quota: (j) CPU per request (Envoy) {:.1} µs against (c) {:.1} µs; throughput {:.2} of (c); p50 at {rate}/s {:.3} ms against {:.3} ms.\n",
            median(&j.cpu_us),
            median(&c.cpu_us),
            median(&j.throughput) / median(&c.throughput),
            median(&j.p50_ms),
            median(&c.p50_ms),
        ));
    }
    if let (Some(b), Some(i)) = (by_label("b"), by_label("i")) {
        out.push_str(&format!(
            "\nFallback: (i) CPU per request {:.1} µs against (b) {:.1} µs (two upstream attempts, each rewritten by the upstream filter); throughput {:.2} of (b).\n",
            median(&i.cpu_us),
            median(&b.cpu_us),
            median(&i.throughput) / median(&b.throughput),
        ));
    }
    if let Some(c) = by_label("c") {
        out.push_str(&format!(
            "\nTarget: (c) throughput {:.2} of (a) (target >= 0.7).\n",
            median(&c.throughput) / base_rps
        ));
    }
    let (Some(b), Some(d), Some(f)) = (by_label("b"), by_label("d"), by_label("f")) else { return out };
    let added = |x: &Figures| median(&x.p50_ms) - base_p50;
    out.push_str(&format!(
        "\nTargets: (b) throughput {:.2} of (a) (target >= 0.75, then 0.85); (d) {:.2} of (a) (target >= 1.2); \
         (b) {:.1}x LiteLLM's throughput (target >= 20); added p50 latency (b) {:.3} ms vs LiteLLM {:.3} ms, ratio {:.3} (target < 0.1).\n",
        median(&b.throughput) / base_rps,
        median(&d.throughput) / base_rps,
        median(&b.throughput) / median(&f.throughput),
        added(b),
        added(f),
        added(b) / added(f),
    ));
    out
}
