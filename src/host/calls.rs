//! Every call between the filter and Envoy, counted: the filter's host calls, and Envoy's callbacks
//! into the module (each context callback, plus the allocation Envoy asks of the module for every
//! host call that returns data). Reported per worker as `ai_gateway_host_calls_total` and
//! `ai_gateway_callbacks_total`, which the benchmark divides by the requests it sent.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

thread_local! {
    static HOST_CALLS: Cell<u64> = const { Cell::new(0) };
    static CALLBACKS: Cell<u64> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>, by: u64) {
    counter.with(|count| count.set(count.get().wrapping_add(by)));
}

/// One host call; `returned_data`: Envoy called into the module's allocator to hand data back.
fn host_call(returned_data: bool) {
    bump(&HOST_CALLS, 1);
    if returned_data {
        bump(&CALLBACKS, 1);
    }
}

/// Envoy called into the module (a context callback).
pub(super) fn callback() {
    bump(&CALLBACKS, 1);
}

/// The counts since the last call: (host calls, callbacks).
pub(super) fn take_counts() -> (u64, u64) {
    (HOST_CALLS.with(|count| count.replace(0)), CALLBACKS.with(|count| count.replace(0)))
}

pub(super) fn get_map_bytes(map: MapType) -> Vec<(String, Vec<u8>)> {
    let pairs = hostcalls::get_map_bytes(map).unwrap_or_default();
    host_call(!pairs.is_empty());
    pairs
}

pub(super) fn set_map_value(map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_map_value(map, name, value)
}

pub(super) fn remove_map_value(map: MapType, name: &str) -> Result<(), Status> {
    host_call(false);
    hostcalls::remove_map_value(map, name)
}

pub(super) fn set_map(map: MapType, pairs: Vec<(&str, &str)>) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_map(map, pairs)
}

pub(super) fn get_buffer(buffer: BufferType, start: usize, max_size: usize) -> Vec<u8> {
    let bytes = hostcalls::get_buffer(buffer, start, max_size).ok().flatten().unwrap_or_default();
    host_call(!bytes.is_empty());
    bytes
}

pub(super) fn set_buffer(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_buffer(buffer, start, size, value)
}

/// A property as text; `None` when it is absent or the host refused (the SDK's own `get_property`
/// panics on host errors other than not-found).
pub(super) fn get_property(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten();
    host_call(bytes.as_ref().is_some_and(|bytes| !bytes.is_empty()));
    String::from_utf8(bytes?).ok().filter(|text| !text.is_empty())
}

pub(super) fn set_property(name: &str, value: &[u8]) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_property(vec![name], Some(value))
}

pub(super) fn get_shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let (value, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
    host_call(value.as_ref().is_some_and(|value| !value.is_empty()));
    (value, cas)
}

pub(super) fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_shared_data(key, Some(value), cas)
}

pub(super) fn get_current_time() -> Option<SystemTime> {
    host_call(false);
    hostcalls::get_current_time().ok()
}

pub(super) fn log(level: LogLevel, message: &str) {
    host_call(false);
    // Logging can only fail if the host is gone; there is nowhere else to report it.
    let _ = hostcalls::log(level, message);
}

pub(super) fn send_http_response(status: u32, headers: Vec<(&str, &str)>, body: &[u8]) -> Result<(), Status> {
    host_call(false);
    hostcalls::send_http_response(status, headers, Some(body))
}

pub(super) fn call_foreign_function(name: &str) -> Result<(), Status> {
    let result = hostcalls::call_foreign_function(name, None);
    host_call(result.as_ref().is_ok_and(|data| data.as_ref().is_some_and(|data| !data.is_empty())));
    result.map(|_| ())
}

pub(super) fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    host_call(false);
    hostcalls::define_metric(kind, name)
}

pub(super) fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    host_call(false);
    hostcalls::increment_metric(id, by)
}

pub(super) fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    host_call(false);
    hostcalls::record_metric(id, value)
}

pub(super) fn set_tick_period(period: Duration) -> Result<(), Status> {
    host_call(false);
    hostcalls::set_tick_period(period)
}
