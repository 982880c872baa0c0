//! The global rate limiting test bed: a real Redis (Debian's `redis-server`) and the test rate
//! limit service (`integration/rls/test_rls.py`, a stand-in for envoyproxy/ratelimit), each on a
//! free loopback port, stopped when dropped; and the service's configuration, written from the
//! gateway's (what `rls-config` prints, and what the shipped RLS configs must equal).

use crate::paths::repo_root;
use ai_gateway_core::config::{Config, QuotaMode};
use ai_gateway_core::quota::global::{service_limits, KEY_ID_ENTRY, LIMIT_ENTRY};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Kills the child if the test process dies first.
fn with_parent_death_signal(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child if we die first.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// A Redis server with no persistence.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    pub fn start() -> Result<Redis, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null());
        let child = with_parent_death_signal(&mut command)
            .spawn()
            .map_err(|e| format!("could not start redis-server (./scripts/setup.sh installs it): {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start in 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis { child, port, _dir: dir })
    }
}

impl Redis {
    /// The sum of the counters whose names contain `part` (the test service names them
    /// `DOMAIN_key_id_ID_limit_LIMIT_WINDOW`), read with Redis's inline protocol.
    pub fn count(&self, part: &str) -> Result<u64, String> {
        let keys = self.command(&format!("KEYS *{part}*"))?;
        let mut total = 0;
        for key in keys.lines().filter(|line| !line.starts_with(['*', '$'])) {
            let value = self.command(&format!("GET {key}"))?;
            total += value
                .lines()
                .filter(|line| !line.starts_with('$'))
                .find_map(|line| line.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn command(&self, command: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        stream.write_all(format!("{command}\r\nQUIT\r\n").as_bytes()).map_err(|e| e.to_string())?;
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        Ok(reply.replace("+OK\r\n", "").replace('\r', ""))
    }

    /// Waits until the counters containing `part` add up to `at_least` (charges made at the end of
    /// a stream reach the service a moment after the stream ended); returns the count reached.
    pub fn wait_for_count(&self, part: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let count = self.count(part).unwrap_or(0);
            if count >= at_least || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test rate limit service, configured with envoyproxy/ratelimit's YAML.
pub struct RateLimitService {
    child: Child,
    pub port: u16,
}

impl RateLimitService {
    /// Starts on `port` (0: a free one) with the configuration in `config`, counting in Redis.
    pub fn start(config: &Path, redis_port: u16, port: u16) -> Result<RateLimitService, String> {
        let python = repo_root().join(".rls/venv/bin/python");
        let mut command = Command::new(&python);
        command
            .arg(repo_root().join("integration/rls/test_rls.py"))
            .arg("--config")
            .arg(config)
            .args(["--redis-port", &redis_port.to_string(), "--port", &port.to_string()])
            .stdout(Stdio::piped());
        let mut child = with_parent_death_signal(&mut command)
            .spawn()
            .map_err(|e| format!("could not start {} (./scripts/setup.sh installs it): {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        let port = line.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let port = port.ok_or_else(|| format!("the test rate limit service did not start: {line:?}"))?;
        Ok(RateLimitService { child, port })
    }

    /// Kills it, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RateLimitService {
    fn drop(&mut self) {
        self.kill();
    }
}

/// envoyproxy/ratelimit's configuration: per key id, one nested descriptor per limit.
pub fn service_config(config: &Config, domain: &str) -> Result<String, String> {
    let limits = service_limits(config);
    let mut keys: Vec<Value> = Vec::new();
    for limit in &limits {
        let entry = json!({ "key": LIMIT_ENTRY, "value": limit.limit,
                            "rate_limit": { "unit": limit.unit, "requests_per_unit": limit.requests_per_unit } });
        match keys.iter_mut().find(|key| key["value"] == limit.key_id.as_str()) {
            Some(key) => key["descriptors"].as_array_mut().into_iter().for_each(|list| list.push(entry.clone())),
            None => keys.push(json!({ "key": KEY_ID_ENTRY, "value": limit.key_id, "descriptors": [entry] })),
        }
    }
    let document = json!({ "domain": domain, "descriptors": keys });
    let yaml = serde_yaml::to_string(&document).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Generated by rls-config from the gateway's configuration: edit that, not this.\n\
         # Limits: {}, of {} keys. The rate limit service counts them in fixed windows.\n{yaml}",
        limits.len(),
        config.keys().filter(|key| !key.limits.is_empty()).count()
    ))
}

/// The filter's JSON configuration in `text`: the text itself when it is that JSON, else the inline
/// configuration of the gateway's Wasm filter found in an Envoy config (the HTTP filter named
/// `ai_gateway`) or an Istio EnvoyFilter (the extension config whose Wasm `config.name` is
/// `ai_gateway`), YAML or JSON, one document.
pub fn filter_document(text: &str) -> Result<String, String> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| format!("neither JSON nor YAML: {e}"))?;
    if value.get("keys").is_some() || value.get("models").is_some() {
        return Ok(text.to_owned());
    }
    let mut found = Vec::new();
    find_filter_configuration(&value, &mut found);
    match found.len() {
        0 => Err("no `ai_gateway` filter with an inline configuration in this Envoy config or EnvoyFilter".to_owned()),
        1 => Ok(found.remove(0)),
        n => Err(format!(
            "{n} different `ai_gateway` filter configurations in this file (one per listener?): a rate limit \
             service configuration is generated from one; pass each filter's JSON configuration on its own"
        )),
    }
}

fn find_filter_configuration(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            let wasm = &value["typed_config"]["config"];
            if object.get("name").and_then(Value::as_str) == Some("ai_gateway") || wasm["name"] == "ai_gateway" {
                if let Some(document) = wasm["configuration"]["value"].as_str() {
                    if !found.iter().any(|seen| seen == document) {
                        found.push(document.to_owned());
                    }
                    return;
                }
            }
            object.values().for_each(|child| find_filter_configuration(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| find_filter_configuration(child, found)),
        _ => {}
    }
}

/// `rls-config`'s output for `text` (see [`filter_document`]), in the configuration's own
/// `quota.domain` unless `domain` overrides it; and whether the configuration is in global mode.
pub fn service_config_of(text: &str, domain: Option<&str>) -> Result<(String, bool), String> {
    let config = Config::parse(filter_document(text)?.as_bytes()).map_err(|e| e.to_string())?;
    let yaml = service_config(&config, domain.unwrap_or(&config.quota.domain))?;
    Ok((yaml, config.quota.mode == QuotaMode::Global))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envoy_config(values: &[&str]) -> String {
        let filters: Vec<Value> = values
            .iter()
            .map(|value| {
                serde_json::json!({ "name": "ai_gateway", "typed_config": { "config": { "name": "ai_gateway",
                    "configuration": { "value": value } } } })
            })
            .collect();
        serde_json::json!({ "static_resources": { "listeners": filters } }).to_string()
    }

    #[test]
    fn one_configuration_is_found_and_several_different_ones_are_refused() {
        let one = r#"{"keys": []}"#;
        assert_eq!(filter_document(&envoy_config(&[one])).unwrap(), one);
        assert_eq!(filter_document(&envoy_config(&[one, one])).unwrap(), one, "the same one on two listeners");
        let error = filter_document(&envoy_config(&[one, r#"{"keys": [1]}"#])).unwrap_err();
        assert!(error.contains("2 different"), "{error}");
        assert!(filter_document("{}").unwrap_err().contains("no `ai_gateway` filter"));
    }
}
