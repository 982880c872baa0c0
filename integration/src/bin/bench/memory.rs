//! Envoy's resident memory per request in flight, with and without the filter: many requests held
//! open at once (256 KB prompts the upstream holds for two seconds; streams the upstream trickles),
//! the peak of Envoy's resident set sampled while they are open, less what it held before.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Envoy's resident set, in bytes (`VmRSS`).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// What one measurement sends: `concurrency` requests at once to `url`, each its own connection.
pub struct Load<'a> {
    pub oha: &'a Path,
    pub url: &'a str,
    pub key: &'a str,
    pub body_file: &'a Path,
    pub headers: &'a [(&'a str, &'a str)],
    pub concurrency: u64,
    /// How long the load runs (requests still open then are cut).
    pub seconds: u64,
}

/// The added resident memory of Envoy `pid` per request in flight under `load`: the peak during
/// the load, less the resident set just before, divided by the requests in flight.
pub fn per_request_in_flight(pid: u32, load: &Load) -> Result<f64, String> {
    std::thread::sleep(Duration::from_millis(500));
    let before = resident_bytes(pid);
    let mut command = Command::new(load.oha);
    command
        .args(["--no-tui", "--output-format", "json", "-z", &format!("{}s", load.seconds)])
        .args(["-c", &load.concurrency.to_string(), "-m", "POST"])
        .args(["-H", &format!("authorization: Bearer {}", load.key), "-H", "content-type: application/json"]);
    for (name, value) in load.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command.arg("-D").arg(load.body_file).arg(load.url).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().map_err(|e| format!("could not run oha: {e}"))?;
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(load.seconds + 30);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        peak = peak.max(resident_bytes(pid));
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    Ok(peak.saturating_sub(before) as f64 / load.concurrency.max(1) as f64)
}
