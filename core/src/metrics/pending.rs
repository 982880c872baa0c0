//! Metric changes gathered inside the VM between flushes to the host: a request's counters cost no
//! host call, and no name is formatted for it. Each series is kept once it has been seen (as Envoy
//! keeps its stats: the labels come from the configuration and fixed lists, so the set is bounded),
//! with its name formatted once and the host's id for it. Histogram samples are handed over as
//! they come (one host call each, as Envoy's ABI records them): gathered, a busy worker's second of
//! them would be one long pause at the flush.

use super::{each_series, Metric, MetricKind, RequestSummary, Series};
use std::collections::HashMap;

/// One series and what it gathered since the last flush.
#[derive(Debug)]
struct Entry {
    metric: Metric,
    key_id: String,
    model: String,
    upstream: String,
    detail: &'static str,
    name: String,
    host_id: Option<u32>,
    /// A counter's increase since the last flush.
    total: u64,
}

/// String equality that never calls `memcmp` for empty strings (glibc's AVX-512 `memcmp` on a
/// dangling pointer costs over 100 ns on some CPUs, and most labels of a series are empty).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

impl Entry {
    fn is(&self, series: &Series) -> bool {
        self.metric == series.metric
            && same(self.detail, series.detail)
            && same(&self.key_id, series.key_id)
            && same(&self.model, series.model)
            && same(&self.upstream, series.upstream)
    }

    fn has_news(&self) -> bool {
        self.total > 0
    }
}

/// What one series has for the host: its name, the id the host gave it (kept here for the next
/// time), and a counter's increase or a histogram's sample.
#[derive(Debug)]
pub struct PendingSeries<'a> {
    pub name: &'a str,
    pub kind: MetricKind,
    pub host_id: &'a mut Option<u32>,
    pub total: u64,
    pub samples: &'a [u64],
}

#[derive(Debug, Default)]
pub struct PendingMetrics {
    entries: Vec<Entry>,
    /// Entries by the hash of their series.
    index: HashMap<u64, Vec<usize>>,
}

/// FNV-1a over the series' fields (short strings: no need for a keyed hash; collisions are told
/// apart by comparing the fields).
fn series_hash(series: &Series) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&[series.metric as u8]);
    eat(series.key_id.as_bytes());
    eat(series.model.as_bytes());
    eat(series.upstream.as_bytes());
    eat(series.detail.as_bytes());
    hash
}

impl PendingMetrics {
    /// Adds what one finished request changes; its histogram samples go to `record` at once.
    pub fn add_request(&mut self, summary: &RequestSummary, mut record: impl FnMut(PendingSeries)) {
        each_series(summary, |series, value| self.add(series, value, &mut record));
    }

    /// Adds `value` to a counter series (handed over at the next flush), or hands it to `record`
    /// as a histogram sample.
    pub fn add(&mut self, series: Series, value: u64, record: &mut dyn FnMut(PendingSeries)) {
        let hash = series_hash(&series);
        let slots = self.index.entry(hash).or_default();
        let found = slots.iter().copied().find(|&index| self.entries.get(index).is_some_and(|entry| entry.is(&series)));
        let index = match found {
            Some(index) => index,
            None => {
                slots.push(self.entries.len());
                self.entries.push(Entry {
                    metric: series.metric,
                    key_id: series.key_id.to_owned(),
                    model: series.model.to_owned(),
                    upstream: series.upstream.to_owned(),
                    detail: series.detail,
                    name: series.name(),
                    host_id: None,
                    total: 0,
                });
                self.entries.len() - 1
            }
        };
        let Some(entry) = self.entries.get_mut(index) else { return };
        match series.metric.kind() {
            MetricKind::Counter => entry.total = entry.total.saturating_add(value),
            MetricKind::Histogram => record(PendingSeries {
                name: &entry.name,
                kind: MetricKind::Histogram,
                host_id: &mut entry.host_id,
                total: 0,
                samples: &[value],
            }),
        }
    }

    /// Hands every counter with something gathered to `flush`, then starts gathering anew.
    pub fn flush(&mut self, mut flush: impl FnMut(PendingSeries)) {
        for entry in self.entries.iter_mut().filter(|entry| entry.has_news()) {
            flush(PendingSeries {
                name: &entry.name,
                kind: entry.metric.kind(),
                host_id: &mut entry.host_id,
                total: entry.total,
                samples: &[],
            });
            entry.total = 0;
        }
    }

    /// The number of series seen so far.
    pub fn series_count(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{updates, Outcome};
    use crate::usage::Usage;

    fn flushed(pending: &mut PendingMetrics) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        pending.flush(|series| out.push((series.name.to_owned(), series.total)));
        out.sort();
        out
    }

    /// Ignores histogram samples.
    fn no_samples(_: PendingSeries) {}

    #[test]
    fn counters_are_summed_per_series_and_samples_go_at_once_named_as_the_updates_name_them() {
        let summary = |key: &str, input| RequestSummary {
            key_id: Some(key.into()),
            model: Some("gpt-4o".into()),
            upstream: Some("openai".into()),
            outcome: Some(Outcome::Ok),
            usage: Some(Usage { input_tokens: input, output_tokens: 1 }),
            upstream_ms: Some(input),
            ..Default::default()
        };
        let mut pending = PendingMetrics::default();
        let mut samples = Vec::new();
        for (key, input) in [("a", 10), ("b", 20), ("a", 30)] {
            pending.add_request(&summary(key, input), |series| {
                assert_eq!((series.kind, series.total), (MetricKind::Histogram, 0));
                samples.push((series.name.to_owned(), series.samples.to_vec()));
            });
        }
        let duration = "ai_gateway_upstream_duration_ms;model=gpt-4o;upstream=openai".to_owned();
        assert_eq!(samples, [(duration.clone(), vec![10]), (duration.clone(), vec![20]), (duration, vec![30])]);
        let gathered = flushed(&mut pending);
        let name = |key: &str, index: usize| updates(&summary(key, 0))[index].name.clone();
        assert!(gathered.contains(&(name("a", 0), 2)), "{gathered:?}");
        assert!(gathered.contains(&(name("b", 0), 1)), "{gathered:?}");
        assert!(gathered.contains(&(name("a", 1), 40)), "{gathered:?}");
        assert_eq!(gathered.len(), 6, "counters only: {gathered:?}");
        assert_eq!(pending.series_count(), 7);
        assert!(flushed(&mut pending).is_empty(), "nothing new since the flush");
    }

    #[test]
    fn a_series_keeps_the_hosts_id_between_flushes() {
        let mut pending = PendingMetrics::default();
        pending.add(Series::plain(Metric::HostCalls), 5, &mut no_samples);
        pending.flush(|series| {
            assert_eq!((series.name, series.total, *series.host_id), ("ai_gateway_host_calls_total", 5, None));
            *series.host_id = Some(42);
        });
        pending.add(Series::plain(Metric::HostCalls), 1, &mut no_samples);
        pending.flush(|series| assert_eq!((series.total, *series.host_id), (1, Some(42))));
    }

    #[test]
    fn series_differing_in_one_label_are_apart_even_when_their_fields_concatenate_alike() {
        let mut pending = PendingMetrics::default();
        let series = |key_id, model| Series { metric: Metric::InputTokens, key_id, model, upstream: "", detail: "" };
        pending.add(series("ab", "c"), 1, &mut no_samples);
        pending.add(series("a", "bc"), 2, &mut no_samples);
        assert_eq!(pending.series_count(), 2);
    }
}
