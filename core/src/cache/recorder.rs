//! The cache's part in one request: the decision before it is forwarded (answer from the cache, or
//! forward and maybe record), the copy of the answer made as it passes, and the events reported.

use super::{cache_key, entry::Entry, lookup, store, Directives, Hit, KeyMaterial, Stored};
use crate::body_format::BodyFormat;
use crate::config::CacheSettings;
use crate::ports::SharedStore;

/// What happened in the cache for one request (`ai_gateway_cache_lookups_total{result}` and the
/// `x-ai-gateway-cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    Miss,
    /// Not looked up: the client sent `cache-control: no-cache` or `no-store`.
    Bypass,
}

impl CacheEvent {
    pub fn name(self) -> &'static str {
        match self {
            CacheEvent::Hit => "hit",
            CacheEvent::Miss => "miss",
            CacheEvent::Bypass => "bypass",
        }
    }
}

/// The cache's decision for a request about to be forwarded.
#[derive(Debug)]
pub enum Plan {
    /// Answer with this stored response.
    Answer(Hit),
    /// Forward the request; record the answer if a recorder is given.
    Forward { event: CacheEvent, recorder: Option<Recorder> },
}

/// Looks the request up (unless the client's directives skip it) and says what to do.
pub fn plan(
    shared: &dyn SharedStore,
    settings: &CacheSettings,
    directives: Directives,
    material: &KeyMaterial,
    now_ns: u64,
) -> Plan {
    if directives.skip_lookup && directives.skip_store {
        return Plan::Forward { event: CacheEvent::Bypass, recorder: None };
    }
    let key = cache_key(settings, material);
    let event = if directives.skip_lookup {
        CacheEvent::Bypass
    } else if let Some(hit) = lookup(shared, settings, &key, now_ns) {
        return Plan::Answer(hit);
    } else {
        CacheEvent::Miss
    };
    let recorder = (!directives.skip_store).then(|| Recorder::new(key, settings));
    Plan::Forward { event, recorder }
}

/// A response being copied as it passes, to be stored if it completes.
#[derive(Debug)]
pub struct Recorder {
    key: [u8; 32],
    format: Option<BodyFormat>,
    body: Vec<u8>,
    max_entry_bytes: usize,
}

impl Recorder {
    fn new(key: [u8; 32], settings: &CacheSettings) -> Recorder {
        let max_entry_bytes = usize::try_from(settings.max_entry_bytes).unwrap_or(usize::MAX);
        Recorder { key, format: None, body: Vec::new(), max_entry_bytes }
    }

    /// At the response headers: keeps recording only a 200 with a JSON or SSE body that is not
    /// compressed (`format` is `None` otherwise) and not declared larger than an entry may be.
    pub fn start(
        mut self,
        status: Option<u16>,
        format: Option<BodyFormat>,
        declared_length: Option<usize>,
    ) -> Option<Self> {
        let fits = declared_length.is_none_or(|length| length <= self.max_entry_bytes);
        if status != Some(200) || format.is_none() || !fits {
            return None;
        }
        self.format = format;
        self.body.reserve(declared_length.unwrap_or(0));
        Some(self)
    }

    /// Copies a chunk of the answer; `false` once the answer is larger than an entry may be (the
    /// recording is then useless and should be dropped).
    pub fn copy(&mut self, chunk: &[u8]) -> bool {
        if self.body.len().saturating_add(chunk.len()) > self.max_entry_bytes {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    /// Stores the recorded answer (call only for an answer that completed).
    pub fn store(self, shared: &dyn SharedStore, settings: &CacheSettings, now_ns: u64) -> Stored {
        let Some(format) = self.format else { return Stored::Failed };
        let entry = Entry { key: self.key, stored_at_ns: now_ns, format, body: self.body };
        store(shared, settings, &entry, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheScope;
    use crate::endpoint::ModelEndpoint;
    use crate::fake::FakeStore;

    fn settings() -> CacheSettings {
        CacheSettings { ttl_seconds: 60, max_entries: 64, max_entry_bytes: 8, scope: CacheScope::Key }
    }

    fn material(body: &[u8]) -> KeyMaterial<'_> {
        KeyMaterial {
            key_id: "k",
            upstream: "u",
            upstream_model: "m",
            endpoint: ModelEndpoint::ChatCompletions,
            authority: "a",
            query: "",
            headers: &[],
            body,
        }
    }

    fn forward(plan: Plan) -> (CacheEvent, Option<Recorder>) {
        match plan {
            Plan::Forward { event, recorder } => (event, recorder),
            Plan::Answer(hit) => panic!("unexpected hit {hit:?}"),
        }
    }

    #[test]
    fn plans_follow_the_clients_directives() {
        let shared = FakeStore::default();
        let s = settings();
        let no_store = Directives { skip_lookup: true, skip_store: true };
        let no_cache = Directives { skip_lookup: true, skip_store: false };
        let (event, recorder) = forward(plan(&shared, &s, no_store, &material(b"{}"), 0));
        assert_eq!((event, recorder.is_none()), (CacheEvent::Bypass, true));
        let (event, recorder) = forward(plan(&shared, &s, no_cache, &material(b"{}"), 0));
        assert_eq!((event, recorder.is_some()), (CacheEvent::Bypass, true));
        let (event, recorder) = forward(plan(&shared, &s, Directives::default(), &material(b"{}"), 0));
        assert_eq!(event, CacheEvent::Miss);
        let mut recorder = recorder.unwrap().start(Some(200), Some(BodyFormat::Json), None).unwrap();
        assert!(recorder.copy(b"{\"a\":1}"));
        assert_eq!(recorder.store(&shared, &s, 0), Stored::Fresh);
        assert!(matches!(plan(&shared, &s, Directives::default(), &material(b"{}"), 1), Plan::Answer(_)));
    }

    #[test]
    fn only_whole_200_answers_that_fit_are_recorded() {
        let shared = FakeStore::default();
        let s = settings();
        let recorder = || forward(plan(&shared, &s, Directives::default(), &material(b"{}"), 0)).1.unwrap();
        assert!(recorder().start(Some(500), Some(BodyFormat::Json), None).is_none());
        assert!(recorder().start(Some(200), None, None).is_none());
        assert!(recorder().start(Some(200), Some(BodyFormat::Json), Some(9)).is_none());
        let mut started = recorder().start(Some(200), Some(BodyFormat::EventStream), Some(8)).unwrap();
        assert!(started.copy(b"12345678"));
        assert!(!started.copy(b"9"));
    }
}
