//! Per-key request and token limits enforced across Envoy workers through shared data with CAS.
//!
//! Each configured (key, limit) pair owns exactly one shared-data entry, named from the key id and
//! the limit kind; nothing is created per request or per window, so the key space is bounded by the
//! configuration. Entries are created when a configuration is loaded, before they are contended
//! (Envoy does not check CAS when a key does not exist yet).

pub mod bucket;
pub mod global;
pub mod headers;
pub mod reservation;

use crate::ports::{SharedStore, StoreError};
use bucket::{Bucket, BucketState, Take};

/// How often a CAS write is retried before the request is refused.
const MAX_CAS_ATTEMPTS: usize = 64;

const SECOND_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerSecond,
    RequestsPerMinute,
    RequestsPerHour,
    RequestsPerDay,
    TokensPerMinute,
    TokensPerHour,
    TokensPerDay,
}

impl LimitKind {
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::RequestsPerSecond => "requests_per_second",
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::RequestsPerHour => "requests_per_hour",
            LimitKind::RequestsPerDay => "requests_per_day",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::TokensPerHour => "tokens_per_hour",
            LimitKind::TokensPerDay => "tokens_per_day",
        }
    }

    pub fn period_ns(self) -> u64 {
        match self {
            LimitKind::RequestsPerSecond => SECOND_NS,
            LimitKind::RequestsPerMinute | LimitKind::TokensPerMinute => 60 * SECOND_NS,
            LimitKind::RequestsPerHour | LimitKind::TokensPerHour => 3_600 * SECOND_NS,
            LimitKind::RequestsPerDay | LimitKind::TokensPerDay => 86_400 * SECOND_NS,
        }
    }

    /// The window's unit in a rate limit service's configuration (`second`, `minute`, ...).
    pub fn unit(self) -> &'static str {
        match self {
            LimitKind::RequestsPerSecond => "second",
            LimitKind::RequestsPerMinute | LimitKind::TokensPerMinute => "minute",
            LimitKind::RequestsPerHour | LimitKind::TokensPerHour => "hour",
            LimitKind::RequestsPerDay | LimitKind::TokensPerDay => "day",
        }
    }

    pub fn counts_tokens(self) -> bool {
        matches!(self, LimitKind::TokensPerMinute | LimitKind::TokensPerHour | LimitKind::TokensPerDay)
    }
}

/// One configured limit of one key, with its shared-data entry name computed once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub kind: LimitKind,
    pub amount: u64,
    pub store_key: String,
}

impl Limit {
    pub fn new(key_id: &str, kind: LimitKind, amount: u64) -> Limit {
        Limit { kind, amount, store_key: format!("ai_gateway/quota/v1/{key_id}/{}", kind.name()) }
    }

    fn bucket(&self) -> Bucket {
        Bucket { capacity: self.amount, period_ns: self.kind.period_ns() }
    }
}

/// Where a limit stands, as reported in the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ns: u64,
}

/// Why units could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Exhausted {
        kind: LimitKind,
        status: LimitStatus,
        retry_after_ns: u64,
    },
    /// Shared data kept changing under us, or refused writes: refuse rather than let traffic through.
    StoreUnavailable,
}

fn read(store: &dyn SharedStore, key: &str) -> (BucketState, Option<u32>) {
    let (value, cas) = store.get(key);
    (value.as_deref().and_then(BucketState::decode).unwrap_or_default(), cas)
}

/// Reads, transforms and writes one entry with CAS, retrying on conflicts. `change` returns the
/// new state to write (or `None` to write nothing) and the result to hand back.
fn update<T>(
    store: &dyn SharedStore,
    key: &str,
    change: impl Fn(BucketState) -> (Option<BucketState>, T),
) -> Result<T, StoreError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (state, cas) = read(store, key);
        let (new_state, result) = change(state);
        let Some(new_state) = new_state else { return Ok(result) };
        match store.set(key, &new_state.encode(), cas) {
            Ok(()) => return Ok(result),
            Err(StoreError::CasMismatch) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::CasMismatch)
}

/// Takes `amount` from one limit, or says why not.
pub fn take(store: &dyn SharedStore, limit: &Limit, amount: u64, now_ns: u64) -> Result<LimitStatus, Refusal> {
    let bucket = limit.bucket();
    let outcome = update(store, &limit.store_key, |state| match bucket.take(state, amount, now_ns) {
        Take::Taken { state, remaining, reset_ns } => {
            (Some(state), Ok(LimitStatus { limit: limit.amount, remaining, reset_ns }))
        }
        Take::Refused { remaining, retry_after_ns, reset_ns } => {
            let status = LimitStatus { limit: limit.amount, remaining, reset_ns };
            (None, Err(Refusal::Exhausted { kind: limit.kind, status, retry_after_ns }))
        }
    });
    outcome.unwrap_or(Err(Refusal::StoreUnavailable))
}

/// Adds (`delta > 0`) or gives back (`delta < 0`) units. Best effort: a failure is reported.
pub fn adjust(store: &dyn SharedStore, limit: &Limit, delta: i64, now_ns: u64) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    let bucket = limit.bucket();
    update(store, &limit.store_key, |state| (Some(bucket.adjust(state, delta, now_ns)), ()))
}

/// Takes `amount` from every limit in `limits`, all or nothing: on a refusal, what was already taken
/// is given back. Returns the status of the tightest limit (fewest remaining), if any.
pub fn take_all<'l>(
    store: &dyn SharedStore,
    limits: impl Iterator<Item = &'l Limit> + Clone,
    amount: u64,
    now_ns: u64,
) -> Result<Option<LimitStatus>, Refusal> {
    let mut tightest: Option<LimitStatus> = None;
    for (taken_so_far, limit) in limits.clone().enumerate() {
        match take(store, limit, amount, now_ns) {
            Ok(status) => {
                if tightest.is_none_or(|t| status.remaining < t.remaining) {
                    tightest = Some(status);
                }
            }
            Err(refusal) => {
                let delta = -i64::try_from(amount).unwrap_or(i64::MAX);
                for taken in limits.take(taken_so_far) {
                    // Best effort: if giving back fails, the units refill with time anyway.
                    let _ = adjust(store, taken, delta, now_ns);
                }
                return Err(refusal);
            }
        }
    }
    Ok(tightest)
}

/// The status of the tightest of `limits` (fewest remaining), read without changing anything.
pub fn peek_tightest<'l>(
    store: &dyn SharedStore,
    limits: impl Iterator<Item = &'l Limit>,
    now_ns: u64,
) -> Option<LimitStatus> {
    limits
        .map(|limit| {
            let (remaining, reset_ns) = limit.bucket().status(read(store, &limit.store_key).0, now_ns);
            LimitStatus { limit: limit.amount, remaining, reset_ns }
        })
        .min_by_key(|status| status.remaining)
}

/// Creates every entry that does not exist yet, so that no request is the first writer of a
/// counter that other workers may be creating at the same time.
pub fn create_missing<'l>(store: &dyn SharedStore, limits: impl Iterator<Item = &'l Limit>) {
    for limit in limits {
        if store.get(&limit.store_key).0.is_none() {
            let _ = store.set(&limit.store_key, &BucketState::default().encode(), None);
        }
    }
}

#[cfg(test)]
mod tests;
