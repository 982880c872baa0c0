//! End-to-end observability on a real Envoy: after a known mix of traffic, `/stats/prometheus`
//! shows exactly the expected series with the right labels, the access log has the filter's
//! fields, and no key or full digest appears in any output.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Labels = BTreeMap<String, String>;

/// `name{a="1",b="2"} value` lines of the Prometheus text format, for one metric name.
fn series(text: &str, name: &str) -> Vec<(Labels, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            let (metric, labels) = head.split_once('{').unwrap_or((head, "}"));
            (metric == name).then_some(())?;
            let labels = labels.trim_end_matches('}');
            let labels: Labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn value(text: &str, name: &str, wanted: &[(&str, &str)]) -> f64 {
    let wanted = labels(wanted);
    series(text, name).into_iter().find(|(l, _)| *l == wanted).map_or(0.0, |(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_access_log_and_logs_match_a_known_mix_of_traffic_and_hold_no_secret() {
    let gateway = TestGateway::start_with(Gateway::config_with_cache(json!({}))).await;
    let chat = |content: &str| json!({ "model": "gpt-mini", "messages": [ { "role": "user", "content": content } ] });
    let send = |key: &'static str, body: Value, request_id: &'static str| {
        let call =
            gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(key).header("x-request-id", request_id);
        async move { call.json(&body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(ALPHA, chat("one"), "obs-1").await, 200);
    assert_eq!(send(ALPHA, chat("two"), "obs-2").await, 200);
    assert_eq!(send(ALPHA, chat("one"), "obs-3").await, 200); // cache hit
    assert_eq!(send("sk-test-wrong-key-0123", chat("x"), "obs-4").await, 401);
    assert_eq!(send(BETA, chat("x"), "obs-5").await, 403);
    assert_eq!(send(ALPHA, json!({ "model": "nope" }), "obs-6").await, 404);
    assert_eq!(send(ALPHA, json!(["not an object"]), "obs-7").await, 400);
    let limited = |content: &str| json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": content } ] });
    assert_eq!(send(LIMITED_OPENAI, limited("a"), "obs-8").await, 200);
    assert_eq!(send(LIMITED_OPENAI, limited("b"), "obs-9").await, 200);
    assert_eq!(send(LIMITED_OPENAI, limited("c"), "obs-10").await, 429);

    // The filter's workers flush their metrics every second; histograms then appear at Envoy's next
    // stats flush (1 s in the test config).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = prometheus(&gateway.envoy);
    let flushed =
        |text: &str| series(text, "ai_gateway_upstream_duration_ms_count").iter().map(|(_, v)| v).sum::<f64>() >= 4.0;
    while !flushed(&text) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        text = gateway.envoy.admin("/stats/prometheus");
    }
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("ai_gateway_") && !l.starts_with('#')).collect();
    let context = ours.join("\n");

    let requests = "ai_gateway_requests_total";
    let request = |key: &str, model: &str, upstream: &str, outcome: &str| {
        value(&text, requests, &[("key_id", key), ("model", model), ("upstream", upstream), ("outcome", outcome)])
    };
    assert_eq!(request("alpha", "gpt-mini", "openai", "ok"), 2.0, "{context}");
    assert_eq!(request("alpha", "gpt-mini", "openai", "cache_hit"), 1.0, "{context}");
    assert_eq!(request("none", "none", "none", "unauthorized"), 1.0, "{context}");
    assert_eq!(request("beta", "gpt-mini", "none", "forbidden"), 1.0, "{context}");
    assert_eq!(request("alpha", "none", "none", "not_found"), 1.0, "{context}");
    assert_eq!(request("alpha", "none", "none", "bad_request"), 1.0, "{context}");
    assert_eq!(request("limited-openai", "gpt-4o", "openai", "ok"), 2.0, "{context}");
    assert_eq!(request("limited-openai", "none", "none", "rate_limited"), 1.0, "{context}");
    let total: f64 = series(&text, requests).iter().map(|(_, v)| v).sum();
    assert_eq!(total, 10.0, "every request counted exactly once:\n{context}");

    // The mock answers 10 prompt and 5 completion tokens; cache hits spend none.
    for (key, model) in [("alpha", "gpt-mini"), ("limited-openai", "gpt-4o")] {
        assert_eq!(
            value(&text, "ai_gateway_input_tokens_total", &[("key_id", key), ("model", model)]),
            20.0,
            "{context}"
        );
        assert_eq!(
            value(&text, "ai_gateway_output_tokens_total", &[("key_id", key), ("model", model)]),
            10.0,
            "{context}"
        );
    }
    assert_eq!(value(&text, "ai_gateway_cache_lookups_total", &[("key_id", "alpha"), ("result", "hit")]), 1.0);
    assert_eq!(value(&text, "ai_gateway_cache_lookups_total", &[("key_id", "alpha"), ("result", "miss")]), 2.0);
    let alpha_stores: f64 = series(&text, "ai_gateway_cache_stores_total")
        .iter()
        .filter(|(l, _)| l.get("key_id").map(String::as_str) == Some("alpha"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(alpha_stores, 2.0, "{context}");
    assert_eq!(
        value(
            &text,
            "ai_gateway_rate_limited_total",
            &[("key_id", "limited-openai"), ("limit", "requests_per_minute")]
        ),
        1.0
    );
    let served_count: f64 = series(&text, "ai_gateway_upstream_duration_ms_count").iter().map(|(_, v)| v).sum();
    assert_eq!(served_count, 4.0, "{context}");
    assert_eq!(series(&text, "ai_gateway_upstream_first_byte_ms_count").iter().map(|(_, v)| v).sum::<f64>(), 4.0);

    // The access log line of a served request carries what the filter decided.
    let mut lines = gateway.envoy.access_log();
    while lines.len() < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lines = gateway.envoy.access_log();
    }
    let line = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no access log line {id}: {lines:?}"))
    };
    let first = line("obs-1");
    for (field, expected) in [
        ("key_id", "alpha"),
        ("model", "gpt-mini"),
        ("upstream", "openai"),
        ("outcome", "ok"),
        ("cache", "miss"),
        ("input_tokens", "10"),
        ("output_tokens", "5"),
    ] {
        assert_eq!(first[field].as_str(), Some(expected), "{field} in {first}");
    }
    assert_eq!(first["status"], 200);
    assert_eq!(line("obs-3")["outcome"], "cache_hit");
    assert_eq!(line("obs-10")["limit"], "requests_per_minute");
    assert_eq!(line("obs-4")["outcome"], "unauthorized");

    // Envoy's log has one line per refusal, with the request id and at most a digest prefix.
    let log = gateway.envoy.log();
    assert!(log.contains("request_id=obs-10") && log.contains("limit=requests_per_minute"), "{log}");
    let wrong_prefix = &sha256_hex("sk-test-wrong-key-0123")[..8];
    assert!(log.contains(&format!("request_id=obs-4 key=none model=none unknown key sha256={wrong_prefix}...")));

    // No key and no full digest anywhere in Envoy's output or the metrics.
    let everything =
        format!("{log}\n{}\n{text}\n{}", serde_json::to_string(&lines).unwrap(), gateway.envoy.admin("/stats"));
    for key in [ALPHA, BETA, LIMITED_OPENAI, "sk-test-wrong-key-0123"] {
        assert!(!everything.contains(key), "the key {key} leaked");
        assert!(!everything.contains(&sha256_hex(key)), "the digest of {key} leaked");
    }
}
