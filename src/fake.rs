//! Test doubles for the host: an in-memory header map.

use crate::ports::HeaderMap;

/// Request headers as an ordered list, the way Envoy keeps them (names lowercase, repeats allowed).
#[derive(Debug, Default, Clone)]
pub struct FakeHeaders {
    pub entries: Vec<(String, String)>,
}

impl FakeHeaders {
    pub fn new(entries: &[(&str, &str)]) -> Self {
        FakeHeaders { entries: entries.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect() }
    }
}

impl HeaderMap for FakeHeaders {
    fn get(&self, name: &str) -> Option<String> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.entries.push((name.to_owned(), value.to_owned()));
    }

    fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| n != name);
    }

    fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// A literal header list in a test table.
pub type HeaderList<'a> = &'a [(&'a str, &'a str)];
