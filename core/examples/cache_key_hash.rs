//! The cache key's hash over prompts of real sizes: BLAKE3 (what `cache_key` uses) against SHA-256
//! over the same fields. Built for `wasm32-wasip1` and run in V8 by `./scripts/bench.sh` (through
//! Node's WASI), it prints one line per size: `<bytes> <SHA-256 µs> <BLAKE3 µs>`.

use ai_gateway_core::cache::{cache_key, KeyMaterial};
use ai_gateway_core::config::{CacheScope, CacheSettings};
use ai_gateway_core::endpoint::ModelEndpoint;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::time::Instant;

/// SHA-256 over the same length-prefixed fields as `cache_key`.
fn sha256_key(material: &KeyMaterial) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(format!("key:{}", material.key_id).as_bytes());
    field(material.upstream.as_bytes());
    field(material.upstream_model.as_bytes());
    field(format!("{:?}", material.endpoint).as_bytes());
    field(material.authority.as_bytes());
    field(material.query.as_bytes());
    field(material.body);
    hasher.finalize().into()
}

/// Microseconds per call of `hash`, over enough calls to hash 64 MB (the fastest of three runs).
fn time(body_len: usize, mut hash: impl FnMut() -> [u8; 32]) -> f64 {
    let calls = (64 * 1024 * 1024 / body_len.max(1)).max(50);
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                black_box(hash());
            }
            started.elapsed().as_secs_f64() * 1e6 / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let settings =
        CacheSettings { ttl_seconds: 300, max_entries: 1024, max_entry_bytes: 1 << 20, scope: CacheScope::Key };
    for size in [1024, 32 * 1024, 256 * 1024] {
        let body: Vec<u8> = "lorem ipsum dolor sit amet ".bytes().cycle().take(size).collect();
        let material = KeyMaterial {
            key_id: "bench",
            upstream: "openai",
            upstream_model: "gpt-4o-mini-2024-07-18",
            endpoint: ModelEndpoint::ChatCompletions,
            authority: "api.openai.com",
            query: "",
            headers: &[],
            body: &body,
        };
        let sha256 = time(size, || sha256_key(black_box(&material)));
        let blake3 = time(size, || cache_key(&settings, black_box(&material)));
        println!("{size} {sha256:.1} {blake3:.1}");
    }
}
