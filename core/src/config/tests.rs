//! Table tests for configuration parsing and validation.

use super::keys::parse_digest;
use super::*;
use crate::quota::LimitKind;
use serde_json::{json, Value};

const FOO_DIGEST: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const BAR_DIGEST: &str = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

/// The example of the configuration contract (docs/configuration.md), read from the page itself so
/// that the documented example always loads.
fn contract_example() -> Value {
    let page = include_str!("../../../docs/configuration.md");
    let (_, after_fence) = page.split_once("```json").expect("the contract page has a JSON example");
    let (example, _) = after_fence.split_once("```").expect("the JSON example is closed");
    serde_json::from_str(example).expect("the contract's example is valid JSON")
}

fn parse(value: &Value) -> Result<Config, ConfigError> {
    Config::parse(value.to_string().as_bytes())
}

/// Each case edits a fresh `base()` document at a JSON pointer (a null value removes the field)
/// and expects it refused at `field` with a message containing the text given.
fn assert_refused(base: fn() -> Value, cases: &[(&str, Value, &str, &str)]) {
    for (pointer, value, field, message) in cases {
        let mut document = base();
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        let object = document.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if value.is_null() {
            object.remove(last);
        } else {
            object.insert(last.to_owned(), value.clone());
        }
        let error = parse(&document).expect_err(pointer);
        assert_eq!(error.field, *field, "{pointer}: {error}");
        assert!(error.to_string().contains(message), "{pointer}: {error}");
    }
}

#[test]
fn contract_example_loads_with_everything_compiled() {
    let config = parse(&contract_example()).unwrap();
    let key = config.key_by_digest(&parse_digest(FOO_DIGEST).unwrap()).unwrap().1;
    assert_eq!(key.id, "team-a");
    let limits: Vec<(LimitKind, u64)> = key.limits.iter().map(|l| (l.kind, l.amount)).collect();
    assert_eq!(
        limits,
        [
            (LimitKind::RequestsPerMinute, 60),
            (LimitKind::TokensPerMinute, 100_000),
            (LimitKind::TokensPerDay, 2_000_000)
        ]
    );
    assert_eq!(key.limits[0].store_key, "ai_gateway/quota/v1/team-a/requests_per_minute");
    let (mini, _) = config.model("gpt-4o-mini").unwrap();
    let (haiku, _) = config.model("claude-haiku").unwrap();
    let (smart, smart_route) = config.model("smart").unwrap();
    assert!(key.may_use(mini) && key.may_use(haiku) && !key.may_use(smart));
    assert_eq!(smart_route.total_weight, 100);
    let upstream = config.upstream(smart_route.targets[1].upstream).unwrap();
    assert_eq!((upstream.name.as_str(), upstream.api), ("anthropic", Api::Anthropic));
    let openai = config.upstream(smart_route.targets[0].upstream).unwrap();
    assert_eq!(openai.forward_headers, ["openai-organization"]);
    assert_eq!(config.cluster_header, DEFAULT_CLUSTER_HEADER);
    let cache = config.cache.unwrap();
    assert_eq!((cache.max_entries, cache.scope), (4096, CacheScope::Key));
}

#[test]
fn defaults_apply_when_optional_fields_are_absent() {
    let config = parse(&json!({
        "keys": [ { "id": "k", "sha256": FOO_DIGEST } ],
        "upstreams": { "up": {} },
        "models": { "m": { "upstream": "up" } },
        "cache": {},
        "cluster_header": "X-Route-To"
    }))
    .unwrap();
    let (_, model) = config.model("m").unwrap();
    let upstream = config.upstream(model.targets[0].upstream).unwrap();
    assert_eq!((upstream.cluster.as_str(), upstream.api, model.targets[0].model.as_deref()), ("up", Api::OpenAi, None));
    assert_eq!(config.cluster_header, "x-route-to");
    assert_eq!(
        config.cache.unwrap(),
        CacheSettings { ttl_seconds: 300, max_entries: 1024, max_entry_bytes: 262_144, scope: CacheScope::Key }
    );
    assert!(config.key_by_digest(&parse_digest(FOO_DIGEST).unwrap()).unwrap().1.may_use(0));
}

#[test]
fn bad_configs_are_rejected_naming_the_field() {
    // Each case edits the contract example with a JSON pointer and a new value (null removes it).
    let cases: &[(&str, Value, &str, &str)] = &[
        ("/keys/0/limts", json!({}), "keys[0].limts", "unknown field `limts`"),
        ("/cahce", json!({}), "cahce", "unknown field `cahce`"),
        ("/keys/0/limits/tokens_per_week", json!(5), "keys[0].limits.tokens_per_week", "unknown field"),
        ("/keys/0/limits/requests_per_minute", json!(0), "keys[0].limits.requests_per_minute", "positive"),
        ("/keys/0/limits/requests_per_minute", json!(-1), "keys[0].limits.requests_per_minute", "invalid value"),
        ("/keys/0/sha256", json!(["ABC"]), "keys[0].sha256[0]", "64 lowercase hex"),
        ("/keys/0/sha256", json!(FOO_DIGEST.to_uppercase()), "keys[0].sha256[0]", "64 lowercase hex"),
        ("/keys/0/sha256", json!([]), "keys[0].sha256", "at least one"),
        ("/keys/0/sha256", json!(5), "keys[0].sha256", "SHA-256 digest"),
        ("/keys/0/sha256", Value::Null, "keys[0]", "missing field `sha256`"),
        ("/keys/0/id", json!("team a"), "keys[0].id", "1 to 64"),
        ("/keys/0/id", json!(""), "keys[0].id", "1 to 64"),
        ("/keys/0/models", json!(["gpt-5"]), "keys[0].models[0]", "not a model"),
        ("/upstreams/openai/api", json!("azure"), "upstreams.openai.api", "unknown variant"),
        (
            "/upstreams/openai/headers/bad header",
            json!("x"),
            "upstreams.openai.headers.bad header",
            "valid HTTP header",
        ),
        (
            "/upstreams/openai/headers/x-ai-gateway-key-id",
            json!("x"),
            "upstreams.openai.headers.x-ai-gateway-key-id",
            "managed by the gateway",
        ),
        (
            "/upstreams/openai/forward_headers",
            json!(["OpenAI-Project", "x-api-key"]),
            "upstreams.openai.forward_headers[1]",
            "never forwarded",
        ),
        (
            "/upstreams/openai/forward_headers",
            json!(["accept-encoding"]),
            "upstreams.openai.forward_headers[0]",
            "managed by the gateway",
        ),
        ("/upstreams/openai/forward_headers", json!(["a b"]), "upstreams.openai.forward_headers[0]", "valid HTTP"),
        ("/upstreams/openai/forward_headers", json!("cookie"), "upstreams.openai.forward_headers", "a sequence"),
        (
            "/upstreams/openai/headers/authorization",
            json!("a\nb"),
            "upstreams.openai.headers.authorization",
            "line breaks",
        ),
        ("/upstreams/openai/cluster", json!(""), "upstreams.openai.cluster", "empty"),
        ("/models/gpt-4o-mini/upstream", json!("azure"), "models.gpt-4o-mini.upstream", "no upstream named \"azure\""),
        ("/models/smart/targets/1/weight", json!(0), "models.smart.targets[1].weight", "positive"),
        ("/models/smart/targets/1/upstream", json!("nope"), "models.smart.targets[1].upstream", "no upstream"),
        ("/models/smart/targets", json!([]), "models.smart.targets", "must not be empty"),
        ("/models/smart/upstream", json!("openai"), "models.smart", "not both"),
        ("/models/gpt-4o-mini/upstream", Value::Null, "models.gpt-4o-mini", "needs `upstream` or `targets`"),
        ("/models/gpt-4o-mini/modle", json!("x"), "models.gpt-4o-mini.modle", "unknown field `modle`"),
        ("/cache/max_entries", json!(0), "cache.max_entries", "positive"),
        ("/cache/scope", json!("tenant"), "cache.scope", "unknown variant"),
        ("/cluster_header", json!(":authority"), "cluster_header", "valid HTTP header"),
        ("/models", json!({}), "models", "at least one model"),
    ];
    assert_refused(contract_example, cases);
}

#[test]
fn duplicate_ids_and_digests_are_rejected() {
    let two_keys = |a: Value, b: Value| json!({ "keys": [a, b], "upstreams": { "up": {} }, "models": { "m": { "upstream": "up" } } });
    let error = parse(&two_keys(json!({"id": "a", "sha256": FOO_DIGEST}), json!({"id": "a", "sha256": BAR_DIGEST})))
        .unwrap_err();
    assert_eq!((error.field.as_str(), error.problem), ("keys[1].id", Problem::DuplicateKeyId("a".into())));
    let error = parse(&two_keys(
        json!({"id": "a", "sha256": FOO_DIGEST}),
        json!({"id": "b", "sha256": [BAR_DIGEST, FOO_DIGEST]}),
    ))
    .unwrap_err();
    assert_eq!(error.field, "keys[1].sha256[1]");
    assert_eq!(error.problem, Problem::DuplicateDigest { other_key: "a".into() });
}

#[test]
fn malformed_documents_are_rejected() {
    for document in [&b""[..], b"{", b"[]", b"{\"keys\": []} trailing", b"\xff"] {
        assert!(matches!(Config::parse(document).unwrap_err().problem, Problem::Syntax(_)), "{document:?}");
    }
}

#[test]
fn rotation_accepts_every_listed_digest() {
    let config = parse(&json!({
        "keys": [ { "id": "k", "sha256": [FOO_DIGEST, BAR_DIGEST] } ],
        "upstreams": { "up": {} },
        "models": { "m": { "upstream": "up" } }
    }))
    .unwrap();
    for digest in [FOO_DIGEST, BAR_DIGEST] {
        assert_eq!(config.key_by_digest(&parse_digest(digest).unwrap()).unwrap().1.id, "k");
    }
}

/// A document with a fallback chain on a single-upstream model and on a weighted target.
fn chain_document() -> Value {
    json!({
        "keys": [ { "id": "k", "sha256": FOO_DIGEST } ],
        "upstreams": { "a": {}, "b": { "api": "anthropic" }, "c": { "cluster": "c_cluster" } },
        "models": {
            "m": { "upstream": "a", "model": "a-model",
                   "fallbacks": [ { "upstream": "b", "model": "b-model" }, { "upstream": "c" } ],
                   "fallback_cluster": "m_chain" },
            "w": { "targets": [
                { "upstream": "a", "weight": 1, "fallbacks": [ { "upstream": "c" } ], "fallback_cluster": "w_chain" },
                { "upstream": "b", "weight": 1 } ] }
        }
    })
}

#[test]
fn fallback_chains_and_the_retry_policy_compile() {
    let config = parse(&chain_document()).unwrap();
    assert_eq!(config.role, Role::Downstream);
    let (_, m) = config.model("m").unwrap();
    let target = &m.targets[0];
    let chain = target.chain.as_ref().unwrap();
    assert_eq!(chain.cluster, "m_chain");
    let names: Vec<&str> = target.chain_upstreams().map(|u| config.upstream(u).unwrap().name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let (b, _) = config.upstream_by_name("b").unwrap();
    let (c, _) = config.upstream_by_name("c").unwrap();
    assert_eq!(
        (target.entry_for(0), target.entry_for(b), target.entry_for(c)),
        (Some(Some("a-model")), Some(Some("b-model")), Some(None))
    );
    let (_, w) = config.model("w").unwrap();
    assert!(w.target_on_cluster("w_chain").is_some() && w.target_on_cluster("m_chain").is_none());
    assert_eq!(w.targets[0].entry_for(b), None, "b is a target of w, not in w_chain");
    assert_eq!(
        config.retry,
        RetrySettings {
            retry_on: "connect-failure,refused-stream,reset,5xx,retriable-status-codes".into(),
            status_codes: "429".into(),
            per_attempt_timeout_ms: DEFAULT_PER_ATTEMPT_TIMEOUT_MS
        }
    );
    let mut custom = chain_document();
    custom["retry"] = json!({ "on": ["gateway-error"], "status_codes": [], "per_attempt_timeout_ms": 5000 });
    custom["role"] = json!("upstream");
    let config = parse(&custom).unwrap();
    assert_eq!(config.role, Role::Upstream);
    assert_eq!((config.retry.retry_on.as_str(), config.retry.status_codes.as_str()), ("gateway-error", ""));
    // The upstream role needs no keys.
    custom.as_object_mut().unwrap().remove("keys");
    assert!(parse(&custom).is_ok());
}

#[test]
fn inconsistent_chains_and_retry_policies_are_rejected_naming_the_field() {
    let cases: &[(&str, Value, &str, &str)] = &[
        ("/models/m/fallback_cluster", Value::Null, "models.m.fallback_cluster", "needs `fallback_cluster`"),
        ("/models/m/fallbacks", Value::Null, "models.m.fallbacks", "no `fallbacks`"),
        ("/models/m/fallbacks", json!([]), "models.m.fallbacks", "must not be empty"),
        ("/models/m/fallbacks/0/upstream", json!("nope"), "models.m.fallbacks[0].upstream", "no upstream named"),
        ("/models/m/fallbacks/0/upstream", json!("a"), "models.m.fallbacks[0].upstream", "already in this chain"),
        ("/models/m/fallbacks/1/upstream", json!("b"), "models.m.fallbacks[1].upstream", "already in this chain"),
        ("/models/m/fallbacks/0/weight", json!(1), "models.m.fallbacks[0].weight", "unknown field `weight`"),
        ("/models/m/fallbacks/0/model", json!(""), "models.m.fallbacks[0].model", "must not be empty"),
        ("/models/m/fallback_cluster", json!("c_cluster"), "models.m.fallback_cluster", "an upstream's own cluster"),
        ("/models/m/fallback_cluster", json!(""), "models.m.fallback_cluster", "must not be empty"),
        ("/models/w/targets/1/fallback_cluster", json!("w_chain"), "models.w.targets[1].fallbacks", "no `fallbacks`"),
        ("/models/w/fallbacks", json!([ { "upstream": "c" } ]), "models.w.fallbacks", "not both"),
        ("/retry", json!({ "on": ["5xx", "timeout"] }), "retry.on[1]", "not a retry condition"),
        ("/retry", json!({ "status_codes": [200] }), "retry.status_codes[0]", "400 to 599"),
        ("/retry", json!({ "per_attempt_timeout_ms": 0 }), "retry.per_attempt_timeout_ms", "positive"),
        ("/retry", json!({ "on": [], "status_codes": [] }), "retry.on", "must not be empty"),
        ("/retry", json!({ "attempts": 3 }), "retry.attempts", "unknown field `attempts`"),
        ("/role", json!("sidecar"), "role", "unknown variant"),
        ("/keys", Value::Null, "keys", "required for the downstream role"),
        ("/quota", json!({ "mode": "fleet" }), "quota.mode", "unknown variant"),
        ("/quota", json!({ "domain": "" }), "quota.domain", "must not be empty"),
        ("/quota", json!({ "mode": "global", "rls": "x" }), "quota.rls", "unknown field"),
        ("/upstreams/c/cluster", json!("a"), "models.m.fallbacks[1].upstream", "its own cluster"),
    ];
    assert_refused(chain_document, cases);
    // Two targets of one model on the same chain cluster could not be told apart by an attempt.
    let mut document = chain_document();
    document["models"]["w"]["targets"][1] =
        json!({ "upstream": "b", "weight": 1, "fallbacks": [ { "upstream": "c" } ], "fallback_cluster": "w_chain" });
    let error = parse(&document).unwrap_err();
    assert_eq!(error.field, "models.w.targets[1].fallback_cluster");
    // Chains of two models on one aggregate cluster must list the same upstreams.
    let mut document = chain_document();
    document["models"]["n"] =
        json!({ "upstream": "a", "fallbacks": [ { "upstream": "b" } ], "fallback_cluster": "m_chain" });
    let error = parse(&document).unwrap_err();
    assert!(error.field.ends_with(".fallback_cluster") && error.to_string().contains("same upstreams"), "{error}");
    document["models"]["n"]["fallbacks"] = json!([ { "upstream": "b", "model": "other" }, { "upstream": "c" } ]);
    assert!(parse(&document).is_ok(), "the same upstreams, other model names: fine");
}

#[test]
fn global_limits_fit_the_rate_limit_services_32_bits() {
    let mut document = chain_document();
    document["keys"][0]["limits"] = json!({ "tokens_per_day": 5_000_000_000u64 });
    assert!(parse(&document).is_ok(), "local mode counts in 64 bits");
    document["quota"] = json!({ "mode": "global" });
    let error = parse(&document).unwrap_err();
    assert_eq!(error.field, "keys[0].limits.tokens_per_day");
    assert!(error.to_string().contains("4294967295"), "{error}");
    document["keys"][0]["limits"] = json!({ "tokens_per_day": 4_294_967_295u64 });
    assert!(parse(&document).is_ok());
}
