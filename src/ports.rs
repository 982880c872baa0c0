//! The small interfaces through which the pure request flow reaches its host (Envoy or a fake).

/// A request's header map. Names are lowercase, as Envoy stores them.
pub trait HeaderMap {
    fn get(&self, name: &str) -> Option<String>;
    fn set(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
    fn names(&self) -> Vec<String>;
}
