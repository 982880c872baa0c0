//! Token-bucket arithmetic for one limit: exact integers, no floating point, no overflow panics.
//!
//! A limit of `N` units per period `P` is a bucket of capacity `N` refilled continuously at `N / P`.
//! The state stores how full the bucket is in "unit-nanoseconds" (one unit = `P` of them), which
//! drain at exactly `N` per nanosecond, so refill never rounds. The stored state does not depend on
//! `N`, so a limit changed by a new configuration keeps its counters.

/// The stored state of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    /// Units in use, times the period in nanoseconds, as of `at_ns`.
    pub used: u128,
    pub at_ns: u64,
}

const VERSION: u8 = 1;
pub const ENCODED_LEN: usize = 25;

/// One limit: `capacity` units per `period_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub capacity: u64,
    pub period_ns: u64,
}

/// The outcome of trying to take units from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Taken { state: BucketState, remaining: u64, reset_ns: u64 },
    Refused { remaining: u64, retry_after_ns: u64, reset_ns: u64 },
}

impl BucketState {
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        let (version, rest) = out.split_at_mut(1);
        let (used, at) = rest.split_at_mut(16);
        version.copy_from_slice(&[VERSION]);
        used.copy_from_slice(&self.used.to_le_bytes());
        at.copy_from_slice(&self.at_ns.to_le_bytes());
        out
    }

    /// `None` for anything not written by this version (treated as an empty bucket by callers).
    pub fn decode(bytes: &[u8]) -> Option<BucketState> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() != ENCODED_LEN - 1 {
            return None;
        }
        let (used, at) = rest.split_at(16);
        Some(BucketState {
            used: u128::from_le_bytes(used.try_into().ok()?),
            at_ns: u64::from_le_bytes(at.try_into().ok()?),
        })
    }
}

impl Bucket {
    fn full(&self) -> u128 {
        u128::from(self.capacity).saturating_mul(u128::from(self.period_ns))
    }

    fn unit(&self) -> u128 {
        u128::from(self.period_ns)
    }

    /// Usage left in the bucket at `now_ns`, after refill.
    fn level(&self, state: BucketState, now_ns: u64) -> u128 {
        let elapsed = u128::from(now_ns.saturating_sub(state.at_ns));
        state.used.saturating_sub(elapsed.saturating_mul(u128::from(self.capacity)))
    }

    fn remaining(&self, level: u128) -> u64 {
        let free = self.full().saturating_sub(level) / self.unit().max(1);
        u64::try_from(free).unwrap_or(u64::MAX)
    }

    /// Nanoseconds until the bucket is full again (OpenAI's "reset").
    fn reset_ns(&self, level: u128) -> u64 {
        u64::try_from(level.div_ceil(u128::from(self.capacity.max(1)))).unwrap_or(u64::MAX)
    }

    pub fn take(&self, state: BucketState, amount: u64, now_ns: u64) -> Take {
        let level = self.level(state, now_ns);
        let needed = u128::from(amount).saturating_mul(self.unit());
        let after = level.saturating_add(needed);
        if after <= self.full() {
            Take::Taken {
                state: BucketState { used: after, at_ns: now_ns.max(state.at_ns) },
                remaining: self.remaining(after),
                reset_ns: self.reset_ns(after),
            }
        } else {
            // More than the whole bucket can never fit: ask to come back after a full period.
            let retry_after_ns = if needed > self.full() {
                self.period_ns
            } else {
                u64::try_from((after - self.full()).div_ceil(u128::from(self.capacity.max(1)))).unwrap_or(u64::MAX)
            };
            Take::Refused { remaining: self.remaining(level), retry_after_ns, reset_ns: self.reset_ns(level) }
        }
    }

    /// Adds (`delta > 0`) or gives back (`delta < 0`) units without an admission check: settling a
    /// reservation to the real usage may push the bucket past full, which later requests then wait out.
    pub fn adjust(&self, state: BucketState, delta: i64, now_ns: u64) -> BucketState {
        let level = self.level(state, now_ns);
        let change = u128::from(delta.unsigned_abs()).saturating_mul(self.unit());
        let used = if delta >= 0 { level.saturating_add(change) } else { level.saturating_sub(change) };
        BucketState { used, at_ns: now_ns.max(state.at_ns) }
    }

    /// (remaining, reset) at `now_ns` without changing anything.
    pub fn status(&self, state: BucketState, now_ns: u64) -> (u64, u64) {
        let level = self.level(state, now_ns);
        (self.remaining(level), self.reset_ns(level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * SECOND;

    fn taken(take: Take) -> (BucketState, u64) {
        match take {
            Take::Taken { state, remaining, .. } => (state, remaining),
            Take::Refused { .. } => panic!("refused: {take:?}"),
        }
    }

    #[test]
    fn a_burst_takes_exactly_the_capacity() {
        let bucket = Bucket { capacity: 5, period_ns: MINUTE };
        let mut state = BucketState::default();
        let now = 1_000 * MINUTE;
        for expected_remaining in (0..5).rev() {
            let (next, remaining) = taken(bucket.take(state, 1, now));
            assert_eq!(remaining, expected_remaining);
            state = next;
        }
        let Take::Refused { retry_after_ns, remaining, reset_ns } = bucket.take(state, 1, now) else { panic!() };
        assert_eq!((remaining, retry_after_ns, reset_ns), (0, 12 * SECOND, MINUTE));
    }

    #[test]
    fn refill_is_continuous_and_exact() {
        let bucket = Bucket { capacity: 60, period_ns: MINUTE };
        let (state, _) = taken(bucket.take(BucketState::default(), 60, 0));
        assert!(matches!(bucket.take(state, 1, SECOND - 1), Take::Refused { .. }));
        assert!(matches!(bucket.take(state, 1, SECOND), Take::Taken { remaining: 0, .. }));
        assert!(matches!(bucket.take(state, 30, 30 * SECOND), Take::Taken { remaining: 0, .. }));
        assert_eq!(bucket.status(state, 2 * MINUTE), (60, 0));
    }

    #[test]
    fn no_double_burst_across_a_boundary() {
        // Whatever the timing, any one-period interval admits at most capacity + what refilled in it.
        let bucket = Bucket { capacity: 10, period_ns: MINUTE };
        let (state, _) = taken(bucket.take(BucketState::default(), 10, MINUTE - 1));
        // Just after a fixed-window boundary, a fixed window would allow 10 more; the bucket allows none.
        assert!(matches!(bucket.take(state, 1, MINUTE + 1), Take::Refused { .. }));
    }

    #[test]
    fn oversize_requests_never_fit() {
        let bucket = Bucket { capacity: 100, period_ns: MINUTE };
        let Take::Refused { retry_after_ns, .. } = bucket.take(BucketState::default(), 101, 0) else { panic!() };
        assert_eq!(retry_after_ns, MINUTE);
    }

    #[test]
    fn adjust_settles_both_ways_and_may_overdraw() {
        let bucket = Bucket { capacity: 100, period_ns: MINUTE };
        let (state, _) = taken(bucket.take(BucketState::default(), 50, 0));
        assert_eq!(bucket.status(bucket.adjust(state, -30, 0), 0).0, 80);
        let over = bucket.adjust(state, 80, 0);
        assert_eq!(bucket.status(over, 0).0, 0);
        assert!(matches!(bucket.take(over, 1, 18 * SECOND), Take::Refused { .. }));
        assert!(matches!(bucket.take(over, 1, 18 * SECOND + 600_000_000), Take::Taken { .. }));
        assert_eq!(bucket.status(bucket.adjust(state, -500, 0), 0).0, 100);
    }

    #[test]
    fn extreme_values_saturate_instead_of_panicking() {
        let bucket = Bucket { capacity: u64::MAX, period_ns: 86_400 * SECOND };
        let (state, _) = taken(bucket.take(BucketState::default(), u64::MAX / 2, u64::MAX));
        let _ = bucket.take(state, u64::MAX, 0);
        let _ = bucket.adjust(state, i64::MIN, u64::MAX);
        let tiny = Bucket { capacity: 1, period_ns: 1 };
        let _ = tiny.take(BucketState { used: u128::MAX, at_ns: 0 }, u64::MAX, u64::MAX);
    }

    #[test]
    fn state_round_trips_and_rejects_foreign_bytes() {
        let state = BucketState { used: u128::MAX - 7, at_ns: 42 };
        assert_eq!(BucketState::decode(&state.encode()), Some(state));
        assert_eq!(BucketState::decode(&[]), None);
        assert_eq!(BucketState::decode(&[2; ENCODED_LEN]), None);
        assert_eq!(BucketState::decode(&state.encode()[..24]), None);
    }
}
