//! A bounded soak: many keys, models and distinct prompts (so the cache keeps replacing entries)
//! through a real Envoy with the filter for a few minutes, sampling Envoy's resident memory and
//! allocated heap. Run: `./scripts/soak.sh`. `SOAK_SECONDS` (180), `SOAK_CONCURRENCY` (16).

use ai_gateway_core::auth::digest;
use ai_gateway_integration::envoy::{Envoy, EnvoySetup};
use ai_gateway_integration::mock_upstream::MockUpstream;
use ai_gateway_integration::paths::repo_root;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 200;
const MODELS: usize = 20;
const DISTINCT_PROMPTS: u64 = 50_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config() -> Value {
    let hex = |key: &str| digest(key).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let keys: Vec<Value> = (0..KEYS)
        .map(|i| {
            json!({ "id": format!("key-{i:03}"), "sha256": hex(&format!("sk-soak-{i:03}")),
                         "limits": { "requests_per_second": 1_000_000, "tokens_per_day": 1_000_000_000_000u64 } })
        })
        .collect();
    let models: serde_json::Map<String, Value> = (0..MODELS)
        .map(|i| (format!("model-{i:02}"), json!({ "upstream": "openai", "model": format!("upstream-model-{i:02}") })))
        .collect();
    json!({ "keys": keys, "upstreams": { "openai": { "cluster": "openai_a" } }, "models": models,
            "cache": { "max_entries": 512, "max_entry_bytes": 8192 } })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn allocated_bytes(envoy: &Envoy) -> u64 {
    let memory: Value = serde_json::from_str(&envoy.admin("/memory")).unwrap_or(Value::Null);
    memory["allocated"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let seconds = setting("SOAK_SECONDS", 180);
    let concurrency = setting("SOAK_CONCURRENCY", 16) as usize;
    let mock = MockUpstream::start("openai-a").await.map_err(|e| e.to_string())?;
    let setup = EnvoySetup::new(config(), &[("openai_a", mock.port())]);
    let envoy = tokio::task::block_in_place(|| Envoy::start(&setup))?;
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let url = envoy.url("/v1/chat/completions");
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (url, sent, failed) = (url.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (worker as u64 + 1);
                let mut next = || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                while Instant::now() < deadline {
                    let (key, model, prompt, stream) =
                        (next() % KEYS as u64, next() % MODELS as u64, next() % DISTINCT_PROMPTS, next() % 5 == 0);
                    let body = json!({ "model": format!("model-{model:02}"), "stream": stream, "max_tokens": 16,
                                       "messages": [ { "role": "user", "content": format!("soak prompt {prompt}") } ] });
                    let response = client.post(&url).bearer_auth(format!("sk-soak-{key:03}")).json(&body).send().await;
                    let ok = match response {
                        Ok(response) if response.status() == 200 => {
                            let mut body = response.bytes_stream();
                            let mut complete = true;
                            while let Some(chunk) = body.next().await {
                                complete &= chunk.is_ok();
                            }
                            complete
                        }
                        _ => false,
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut rows = vec![
        "| elapsed (s) | requests | failed | Envoy RSS (MiB) | Envoy allocated (MiB) |".to_owned(),
        "| --- | --- | --- | --- | --- |".to_owned(),
    ];
    let mut samples = Vec::new();
    // One row of the report, and Envoy's (RSS KiB, allocated bytes) now.
    let sample = || {
        let (rss, allocated) = (rss_kib(envoy.pid), allocated_bytes(&envoy));
        let row = format!(
            "| {:.0} | {} | {} | {:.1} | {:.1} |",
            started.elapsed().as_secs_f64(),
            sent.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            rss as f64 / 1024.0,
            allocated as f64 / 1_048_576.0
        );
        (row, (rss, allocated))
    };
    while Instant::now() < deadline {
        let (row, sample) = sample();
        eprintln!("{row}");
        rows.push(row);
        samples.push(sample);
        tokio::time::sleep(
            Duration::from_secs(10).min(deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(10)),
        )
        .await;
    }
    for worker in workers {
        let _ = worker.await;
    }
    let (row, (rss, allocated)) = sample();
    rows.push(row);
    samples.push((rss, allocated));
    // Plateau: from the first sample after warm-up (a third of the run) to the end.
    let warm = samples.get(samples.len() / 3).copied().unwrap_or_default();
    let summary = format!(
        "\nSoak: {seconds} s, {concurrency} concurrent clients, {KEYS} keys, {MODELS} models, {DISTINCT_PROMPTS} distinct prompts \
         (20 % streamed), cache of 512 entries; {} requests, {} failed. After warm-up, Envoy RSS went from {:.1} to {:.1} MiB \
         and its allocated heap from {:.1} to {:.1} MiB.\n",
        sent.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        warm.0 as f64 / 1024.0,
        rss as f64 / 1024.0,
        warm.1 as f64 / 1_048_576.0,
        allocated as f64 / 1_048_576.0
    );
    let report = format!("{}\n{summary}", rows.join("\n"));
    println!("{report}");
    let out = repo_root().join("target/soak");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("report.md"), &report);
    if failed.load(Ordering::Relaxed) > 0 {
        return Err(format!("{} requests failed", failed.load(Ordering::Relaxed)));
    }
    Ok(())
}
