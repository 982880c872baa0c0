//! Tests of limits over the fake shared store: exact counts under CAS conflicts, all-or-nothing.

use super::*;
use crate::fake::FakeStore;

const MINUTE: u64 = 60_000_000_000;

fn rpm(amount: u64) -> Limit {
    Limit::new("team-a", LimitKind::RequestsPerMinute, amount)
}

#[test]
fn admits_exactly_the_limit_even_with_cas_conflicts() {
    let store = FakeStore::default();
    let limit = rpm(10);
    create_missing(&store, [&limit].into_iter());
    let mut admitted = 0;
    for i in 0..64 {
        store.conflicts_to_inject.set(i % 5);
        if take(&store, &limit, 1, MINUTE).is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    let Err(Refusal::Exhausted { kind, status, retry_after_ns }) = take(&store, &limit, 1, MINUTE) else { panic!() };
    assert_eq!((kind, status.remaining, retry_after_ns), (LimitKind::RequestsPerMinute, 0, 6_000_000_000));
}

#[test]
fn interleaved_workers_never_lose_an_update() {
    // Worker A reads, worker B writes in between, A's write must fail and retry from B's value.
    let store = FakeStore::default();
    let limit = rpm(100);
    create_missing(&store, [&limit].into_iter());
    let (a_value, a_cas) = store.get(&limit.store_key);
    take(&store, &limit, 1, 0).unwrap(); // worker B
    let a_state = bucket::BucketState::decode(&a_value.unwrap()).unwrap();
    let Take::Taken { state, .. } = limit.bucket().take(a_state, 1, 0) else { panic!() };
    assert_eq!(store.set(&limit.store_key, &state.encode(), a_cas), Err(StoreError::CasMismatch));
    take(&store, &limit, 1, 0).unwrap(); // worker A's retry
    assert_eq!(take(&store, &limit, 0, 0).unwrap().remaining, 98);
}

#[test]
fn endless_conflicts_or_refused_writes_fail_closed() {
    let store = FakeStore::default();
    let limit = rpm(10);
    store.conflicts_to_inject.set(u32::MAX);
    assert_eq!(take(&store, &limit, 1, 0), Err(Refusal::StoreUnavailable));
    store.conflicts_to_inject.set(0);
    store.refuse_writes.set(true);
    assert_eq!(take(&store, &limit, 1, 0), Err(Refusal::StoreUnavailable));
}

#[test]
fn take_all_is_all_or_nothing_and_reports_the_tightest_limit() {
    let store = FakeStore::default();
    let limits = [rpm(100), Limit::new("team-a", LimitKind::RequestsPerSecond, 2)];
    let first = take_all(&store, limits.iter(), 1, 0).unwrap().unwrap();
    assert_eq!((first.limit, first.remaining), (2, 1));
    take_all(&store, limits.iter(), 1, 0).unwrap();
    assert!(matches!(
        take_all(&store, limits.iter(), 1, 0),
        Err(Refusal::Exhausted { kind: LimitKind::RequestsPerSecond, .. })
    ));
    // The per-minute unit taken before the refusal was given back.
    assert_eq!(take(&store, &limits[0], 0, 0).unwrap().remaining, 98);
}

#[test]
fn create_missing_never_resets_a_counter() {
    let store = FakeStore::default();
    let limit = rpm(5);
    take(&store, &limit, 3, 0).unwrap();
    create_missing(&store, [&limit].into_iter());
    assert_eq!(take(&store, &limit, 0, 0).unwrap().remaining, 2);
    assert_eq!(store.keys(), ["ai_gateway/quota/v1/team-a/requests_per_minute"]);
}

#[test]
fn adjust_gives_back_and_charges_more() {
    let store = FakeStore::default();
    let limit = Limit::new("k", LimitKind::TokensPerMinute, 1000);
    take(&store, &limit, 600, 0).unwrap();
    adjust(&store, &limit, -500, 0).unwrap();
    assert_eq!(take(&store, &limit, 0, 0).unwrap().remaining, 900);
    adjust(&store, &limit, 2000, 0).unwrap();
    assert!(take(&store, &limit, 1, 0).is_err());
}
