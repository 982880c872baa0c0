//! Cache key material and scoping, slot table behaviour against the fake store.

use super::*;
use crate::fake::FakeStore;

const SECOND: u64 = 1_000_000_000;

fn settings(max_entries: u32, scope: CacheScope) -> CacheSettings {
    CacheSettings { ttl_seconds: 300, max_entries, max_entry_bytes: 1024, scope }
}

fn material(key_id: &str, body: &str) -> KeyMaterial<'static> {
    KeyMaterial {
        key_id: Box::leak(key_id.to_owned().into_boxed_str()),
        upstream: "openai",
        upstream_model: "gpt-4o",
        endpoint: ModelEndpoint::ChatCompletions,
        authority: "api.openai.com",
        query: "",
        headers: &[],
        body: Box::leak(body.as_bytes().to_vec().into_boxed_slice()),
    }
}

fn key(settings: &CacheSettings, material: &KeyMaterial) -> [u8; 32] {
    cache_key(settings, material)
}

#[test]
fn the_same_bytes_are_the_same_entry() {
    let s = settings(16, CacheScope::Key);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;
    assert_eq!(key(&s, &material("k", body)), key(&s, &material("k", body)));
}

#[test]
fn bodies_that_parsers_may_read_differently_never_share_an_entry() {
    let s = settings(16, CacheScope::Key);
    let pairs = [
        // Integers past 2^64 that a float reader folds together.
        (r#"{"model":"m","seed":18446744073709551616}"#, r#"{"model":"m","seed":18446744073709551617}"#),
        (r#"{"model":"m","n":1.0}"#, r#"{"model":"m","n":1}"#),
        // A duplicated key: first-wins and last-wins readers disagree.
        (r#"{"model":"m","temperature":0,"temperature":1}"#, r#"{"model":"m","temperature":1}"#),
        (r#"{"model":"m","stop":"\u0041"}"#, r#"{"model":"m","stop":"A"}"#),
        (r#"{"model":"m","a":1,"b":2}"#, r#"{"model":"m","b":2,"a":1}"#),
    ];
    for (a, b) in pairs {
        assert_ne!(key(&s, &material("k", a)), key(&s, &material("k", b)), "{a} vs {b}");
    }
}

#[test]
fn everything_that_changes_the_answer_changes_the_key() {
    let s = settings(16, CacheScope::Key);
    let base_body = r#"{"model":"m","messages":[],"temperature":0}"#;
    let base = key(&s, &material("k", base_body));
    let mut variants = vec![
        material("k", r#"{"model":"m","messages":[],"temperature":1}"#),
        material("k", r#"{"model":"m","messages":[],"temperature":0,"stream":true}"#),
        material("other-key", base_body),
    ];
    let mut other_upstream = material("k", base_body);
    other_upstream.upstream = "anthropic";
    let mut other_model = material("k", base_body);
    other_model.upstream_model = "gpt-4o-mini";
    let mut other_endpoint = material("k", base_body);
    other_endpoint.endpoint = ModelEndpoint::Responses;
    let beta = [("anthropic-beta".to_owned(), "prompt-caching-2024-07-31".to_owned())];
    let mut with_header = material("k", base_body);
    with_header.headers = &beta;
    let organization = [("openai-organization".to_owned(), "org-b".to_owned())];
    let mut with_organization = material("k", base_body);
    with_organization.headers = &organization;
    let mut with_query = material("k", base_body);
    with_query.query = "api-version=2024-10-21";
    let mut other_host = material("k", base_body);
    other_host.authority = "tenant-b.example";
    variants.extend([
        other_upstream,
        other_model,
        other_endpoint,
        with_header,
        with_organization,
        with_query,
        other_host,
    ]);
    for variant in &variants {
        assert_ne!(key(&s, variant), base, "{:?}", std::str::from_utf8(variant.body));
    }
}

#[test]
fn global_scope_shares_entries_between_keys() {
    let s = settings(16, CacheScope::Global);
    assert_eq!(key(&s, &material("a", r#"{"model":"m"}"#)), key(&s, &material("b", r#"{"model":"m"}"#)));
}

#[test]
fn cache_control_directives() {
    let cases = [
        (None, Directives::default()),
        (Some("no-cache"), Directives { skip_lookup: true, skip_store: false }),
        (Some("max-age=0, No-Store"), Directives { skip_lookup: true, skip_store: true }),
        (Some("private"), Directives::default()),
    ];
    for (value, expected) in cases {
        assert_eq!(Directives::from_cache_control(value), expected, "{value:?}");
    }
}

fn entry(key: [u8; 32], body: &str, now_ns: u64) -> Entry {
    Entry { key, stored_at_ns: now_ns, format: BodyFormat::Json, body: body.as_bytes().to_vec() }
}

#[test]
fn entries_are_served_until_their_ttl() {
    let store = FakeStore::default();
    let s = settings(16, CacheScope::Key);
    let k = key(&s, &material("k", r#"{"model":"m"}"#));
    assert_eq!(lookup(&store, &s, &k, 0), None);
    assert_eq!(super::store(&store, &s, &entry(k, "{\"a\":1}", 10 * SECOND), 10 * SECOND), Stored::Fresh);
    let hit = lookup(&store, &s, &k, 70 * SECOND).unwrap();
    assert_eq!((hit.body.as_slice(), hit.age_seconds), (&b"{\"a\":1}"[..], 60));
    assert!(lookup(&store, &s, &k, 310 * SECOND - 1).is_some());
    assert_eq!(lookup(&store, &s, &k, 310 * SECOND), None);
}

#[test]
fn a_slot_collision_is_a_miss_never_another_answer() {
    let store = FakeStore::default();
    let s = settings(1, CacheScope::Key);
    let first = key(&s, &material("k", r#"{"model":"first"}"#));
    let second = key(&s, &material("k", r#"{"model":"second"}"#));
    super::store(&store, &s, &entry(first, "first answer", 0), 0);
    assert_eq!(lookup(&store, &s, &second, 0), None);
    assert_eq!(super::store(&store, &s, &entry(second, "second answer", 0), 0), Stored::Replaced);
    assert_eq!(lookup(&store, &s, &first, 0), None);
    assert_eq!(lookup(&store, &s, &second, 0).unwrap().body, b"second answer");
}

#[test]
fn the_table_never_grows_past_max_entries() {
    let store = FakeStore::default();
    let s = settings(4, CacheScope::Key);
    let mut replaced = 0;
    for i in 0..100 {
        let k = key(&s, &material("k", &format!("{{\"model\":\"m\",\"i\":{i}}}")));
        if super::store(&store, &s, &entry(k, "answer", 0), 0) == Stored::Replaced {
            replaced += 1;
        }
        assert!(lookup(&store, &s, &k, 0).is_some());
    }
    assert_eq!(store.keys().len(), 4);
    assert!(replaced >= 90, "{replaced}");
}

#[test]
fn oversize_answers_are_not_stored() {
    let store = FakeStore::default();
    let s = settings(4, CacheScope::Key);
    let k = [1; 32];
    assert_eq!(super::store(&store, &s, &entry(k, &"x".repeat(1025), 0), 0), Stored::TooLarge);
    assert_eq!(super::store(&store, &s, &entry(k, &"x".repeat(1024), 0), 0), Stored::Fresh);
    assert!(store.keys().len() == 1);
}

#[test]
fn a_torn_or_foreign_slot_value_reads_as_a_miss() {
    let store = FakeStore::default();
    let s = settings(1, CacheScope::Key);
    let k = [3; 32];
    let encoded = entry(k, "whole answer", 0).encode().unwrap();
    let slot = slot_key(&s, &k);
    store.set(&slot, &encoded[..encoded.len() - 3], None).unwrap();
    assert_eq!(lookup(&store, &s, &k, 0), None);
    store.set(&slot, b"garbage", None).unwrap();
    assert_eq!(lookup(&store, &s, &k, 0), None);
    // Two writers racing on one slot: each write replaces the value whole.
    let other = entry([4; 32], "other answer", 0).encode().unwrap();
    store.set(&slot, &encoded, None).unwrap();
    store.set(&slot, &other, None).unwrap();
    assert_eq!(lookup(&store, &s, &k, 0), None);
    assert_eq!(lookup(&store, &s, &[4; 32], 0).unwrap().body, b"other answer");
}
