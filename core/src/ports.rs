//! The small interfaces through which the pure request flow reaches its host (Envoy or a fake).

/// A request's header map. Names are lowercase, as Envoy stores them. Reads take `&mut self` so
/// that an implementation may fetch the map lazily.
pub trait HeaderMap {
    fn get(&mut self, name: &str) -> Option<String>;
    /// Every value of a header that may be repeated, in order.
    fn get_all(&mut self, name: &str) -> Vec<String>;
    fn set(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
    fn names(&mut self) -> Vec<String>;
    /// The names `wanted` picks, in order, repeats kept: unlike [`HeaderMap::names`], nothing is
    /// copied for the names left out (the hot paths look for a few among many).
    fn names_where(&mut self, wanted: &mut dyn FnMut(&str) -> bool) -> Vec<String>;
}

/// Whether a header name starts with `prefix`, ignoring ASCII case (Envoy lowercases names; a
/// client's spelling never matters).
pub fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes().get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The time, read only when something needs it.
pub trait Clock {
    fn now_ns(&self) -> u64;
}

/// A fixed time (tests, and callers that already know it).
impl Clock for u64 {
    fn now_ns(&self) -> u64 {
        *self
    }
}

/// What Envoy knows of a response beyond its headers, read only when something needs it.
pub trait ResponseInfo: Clock {
    /// Envoy's response code details: why the response is what it is (`via_upstream` for a
    /// provider's answer; a reason of Envoy's own, like `request_rate_limited`, for its replies).
    fn code_details(&self) -> Option<String>;
}

/// A fixed time and a provider's answer (tests).
impl ResponseInfo for u64 {
    fn code_details(&self) -> Option<String> {
        Some("via_upstream".to_owned())
    }
}

/// Why a shared-data write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another writer changed the value since it was read: read again and retry.
    CasMismatch,
    /// The host refused the write for another reason.
    Failed,
}

/// Envoy's shared data: one value per key, shared by every worker of a VM id, with a CAS token.
/// There is no delete, so callers must keep the key space bounded.
pub trait SharedStore {
    /// The value and its CAS token, or `(None, None)` when the key does not exist.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value` if the key's CAS token is still `cas` (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}
