//! Test doubles for the host: an in-memory header map and shared store.

use crate::ports::{HeaderMap, SharedStore, StoreError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

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
    fn get(&mut self, name: &str) -> Option<String> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    fn get_all(&mut self, name: &str) -> Vec<String> {
        self.entries.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.entries.push((name.to_owned(), value.to_owned()));
    }

    fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| n != name);
    }

    fn names(&mut self) -> Vec<String> {
        self.entries.iter().map(|(n, _)| n.clone()).collect()
    }

    fn names_where(&mut self, wanted: &mut dyn FnMut(&str) -> bool) -> Vec<String> {
        self.entries.iter().filter(|(n, _)| wanted(n)).map(|(n, _)| n.clone()).collect()
    }
}

/// A literal header list in a test table.
pub type HeaderList<'a> = &'a [(&'a str, &'a str)];

/// Shared data with Envoy's semantics (CAS checked only on existing keys), plus injected conflicts:
/// each injected conflict makes one write fail as if another worker had just written the key.
#[derive(Debug, Default)]
pub struct FakeStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    pub conflicts_to_inject: Cell<u32>,
    pub refuse_writes: Cell<bool>,
    pub writes: Cell<u32>,
}

impl FakeStore {
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.borrow().keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl SharedStore for FakeStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.entries.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if self.refuse_writes.get() {
            return Err(StoreError::Failed);
        }
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|(_, c)| *c);
        if self.conflicts_to_inject.get() > 0 {
            self.conflicts_to_inject.set(self.conflicts_to_inject.get() - 1);
            if let Some((_, c)) = entries.get_mut(key) {
                *c += 1;
            }
            return Err(StoreError::CasMismatch);
        }
        if let (Some(expected), Some(current)) = (cas, current) {
            if expected != current {
                return Err(StoreError::CasMismatch);
            }
        }
        entries.insert(key.to_owned(), (value.to_vec(), current.unwrap_or(0) + 1));
        self.writes.set(self.writes.get() + 1);
        Ok(())
    }
}
