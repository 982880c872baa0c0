//! Launches a real Envoy with the built filter on loopback: ports chosen by Envoy itself and read
//! back from its admin API, `--concurrency 2` by default, log kept, process always stopped.

use crate::paths::{envoy_binary, filter_wasm};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The request header the shipped configs route on.
pub const CLUSTER_HEADER: &str = "x-ai-gateway-cluster";

/// The shipped demo config: the one Envoy config shape (filter chain, Wasm filter settings, route,
/// access log, stats tags, local replies) that the tests, the benchmark and the docs all use.
pub const TEMPLATE: &str = "envoy/demo.yaml";

/// `envoy/demo.yaml`, as JSON.
pub fn template() -> Result<Value, String> {
    let path = crate::paths::repo_root().join(TEMPLATE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What to run: the filter's JSON configuration and the upstream clusters (name, loopback port).
#[derive(Debug, Clone)]
pub struct EnvoySetup {
    pub filter_config: Value,
    pub clusters: Vec<(String, u16)>,
    pub concurrency: u32,
    pub buffer_limit_bytes: u32,
    /// `false`: plain Envoy, no filter, every request routed to the first cluster (the baseline).
    pub with_filter: bool,
    /// The filter's configuration comes from a watched file (a file-based extension config
    /// source), which [`Envoy::replace_filter_config`] swaps atomically.
    pub live_reload: bool,
    /// Route every request to this cluster (a single-provider deployment) instead of the cluster
    /// the filter writes to the cluster header.
    pub fixed_cluster: Option<String>,
    /// Keep HTTP/1.1 chunked trailers (`http_protocol_options.enable_trailers`), the clients' and
    /// the providers' (on every provider cluster); Envoy drops them by default.
    pub http1_trailers: bool,
    /// The route's `per_request_buffer_limit_bytes`: how much of a body Envoy keeps to retry it on
    /// the next provider of a fallback chain (by default, the listener's buffer limit).
    pub retry_buffer_limit_bytes: Option<u32>,
    /// Envoy's rate limit filter after the Wasm filter, as `envoy/global-quota.yaml` declares it,
    /// asking the global rate limit service on this port; and its `failure_mode_deny`.
    pub rate_limit_service: Option<(u16, bool)>,
}

impl EnvoySetup {
    pub fn new(filter_config: Value, clusters: &[(&str, u16)]) -> Self {
        EnvoySetup {
            filter_config,
            clusters: clusters.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            concurrency: 2,
            buffer_limit_bytes: 8 * 1024 * 1024,
            with_filter: true,
            live_reload: false,
            fixed_cluster: None,
            http1_trailers: false,
            retry_buffer_limit_bytes: None,
            rate_limit_service: None,
        }
    }

    /// Plain Envoy without the filter, routing everything to one cluster.
    pub fn plain(cluster: &str, port: u16) -> Self {
        EnvoySetup { with_filter: false, ..EnvoySetup::new(Value::Null, &[(cluster, port)]) }
    }

    /// The Envoy bootstrap: `envoy/demo.yaml` on free ports, with this setup's clusters, filter
    /// configuration and options; the access log goes to `access_log` (JSON lines).
    pub fn bootstrap(&self, wasm: &Path, access_log: &Path) -> Result<Value, String> {
        let mut bootstrap = template()?;
        bootstrap["node"] = json!({ "id": "ai-gateway-test", "cluster": "ai-gateway-test" });
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = json!(0);
        bootstrap["stats_flush_interval"] = json!("1s");
        let listener = &mut bootstrap["static_resources"]["listeners"][0];
        listener["address"]["socket_address"]["port_value"] = json!(0);
        listener["per_connection_buffer_limit_bytes"] = json!(self.buffer_limit_bytes);
        let manager = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        let log_format = manager["access_log"][0]["typed_config"]["log_format"].take();
        manager["access_log"] = json!([ { "name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": access_log, "log_format": log_format } } ]);
        manager["http_protocol_options"] = json!({ "enable_trailers": self.http1_trailers });
        self.set_filters_and_route(manager, wasm, access_log)?;
        let providers = provider_names(&self.filter_config);
        let mut clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|(name, port)| loopback_cluster(name, *port, providers.get(name).map(String::as_str)))
            .collect();
        if self.http1_trailers {
            for cluster in &mut clusters {
                cluster["typed_extension_protocol_options"] = json!({
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http_protocol_options": { "enable_trailers": true } } } });
            }
        }
        if self.with_filter {
            let template_chain = template_chain_cluster(&template()?)?;
            for (chain, members) in fallback_chains(&self.filter_config, &providers) {
                clusters.push(chain_cluster(&template_chain, &chain, &members, wasm, &self.filter_config));
            }
        }
        if let (Some((port, deny)), true) = (self.rate_limit_service, self.with_filter) {
            let (filter, mut cluster, shipped_route) = global_quota_pieces()?;
            let route = &mut manager["route_config"]["virtual_hosts"][0]["routes"][0];
            for field in ["request_headers_to_remove", "response_headers_to_remove"] {
                route[field] = shipped_route[field].clone();
            }
            let filters = manager["http_filters"].as_array_mut().ok_or("no http_filters")?;
            let mut filter = filter;
            filter["typed_config"]["failure_mode_deny"] = json!(deny);
            filters.insert(1, filter);
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["port_value"] = json!(port);
            clusters.push(cluster);
        }
        bootstrap["static_resources"]["clusters"] = Value::Array(clusters);
        Ok(bootstrap)
    }

    /// The Wasm filter (with this setup's module and configuration, or from a watched file), and
    /// the route: to the cluster the filter chose, to a fixed cluster, or (without the filter) to
    /// the first cluster.
    fn set_filters_and_route(&self, manager: &mut Value, wasm: &Path, access_log: &Path) -> Result<(), String> {
        let first_cluster = self.clusters.first().map(|(name, _)| name.clone()).unwrap_or_default();
        let route = match (&self.fixed_cluster, self.with_filter) {
            (_, false) => json!({ "cluster": first_cluster, "timeout": "60s" }),
            (Some(cluster), true) => json!({ "cluster": cluster, "timeout": "60s" }),
            // The template's route: the cluster header, and the retry policy of fallback chains.
            (None, true) => {
                let mut route = manager["route_config"]["virtual_hosts"][0]["routes"][0]["route"].clone();
                route["timeout"] = json!("60s");
                route
            }
        };
        manager["route_config"]["virtual_hosts"][0]["routes"][0]["route"] = route;
        if let Some(limit) = self.retry_buffer_limit_bytes {
            manager["route_config"]["virtual_hosts"][0]["routes"][0]["per_request_buffer_limit_bytes"] = json!(limit);
        }
        let filters = manager["http_filters"].as_array_mut().ok_or("the template has no http_filters")?;
        if !self.with_filter {
            filters.retain(|filter| filter["name"] != "ai_gateway");
            return Ok(());
        }
        let wasm_filter = filters.iter_mut().find(|f| f["name"] == "ai_gateway").ok_or("no ai_gateway filter")?;
        let config = &mut wasm_filter["typed_config"]["config"];
        config["vm_config"]["code"]["local"]["filename"] = json!(wasm);
        config["configuration"]["value"] = json!(self.filter_config.to_string());
        if self.live_reload {
            let filter_file = access_log.with_file_name("filter").join("ai_gateway.yaml");
            *wasm_filter = json!({ "name": "ai_gateway", "config_discovery": {
                "config_source": { "path_config_source": {
                    "path": filter_file, "watched_directory": { "path": filter_file.parent() } } },
                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"] } });
        }
        Ok(())
    }
}

/// A provider cluster on loopback; its endpoint names the upstream it serves (`ai_gw.provider`),
/// as a fallback chain's attempts need.
fn loopback_cluster(name: &str, port: u16, provider: Option<&str>) -> Value {
    let mut endpoint = json!({ "endpoint": {
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } } } });
    if let Some(provider) = provider {
        endpoint["metadata"] = json!({ "filter_metadata": { "ai_gw": { "provider": provider } } });
    }
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": { "cluster_name": name, "endpoints": [ { "lb_endpoints": [endpoint] } ] }
    })
}

/// The rate limit filter, the rate limit service's cluster and the route of
/// `envoy/global-quota.yaml`.
fn global_quota_pieces() -> Result<(Value, Value, Value), String> {
    let path = crate::paths::repo_root().join("envoy/global-quota.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: Value = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let filters =
        &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let filter = filters
        .as_array()
        .and_then(|list| list.iter().find(|f| f["name"] == "envoy.filters.http.ratelimit"))
        .cloned()
        .ok_or("envoy/global-quota.yaml has no rate limit filter")?;
    let cluster = config["static_resources"]["clusters"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == "rate_limit_service"))
        .cloned()
        .ok_or("envoy/global-quota.yaml has no rate_limit_service cluster")?;
    let route = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"][0]
        .clone();
    Ok((filter, cluster, route))
}

/// Cluster name -> the upstream of the filter configuration that uses it (its `cluster`, or its name).
fn provider_names(filter_config: &Value) -> HashMap<String, String> {
    let upstreams = filter_config["upstreams"].as_object().cloned().unwrap_or_default();
    upstreams
        .iter()
        .map(|(name, upstream)| (upstream["cluster"].as_str().unwrap_or(name).to_owned(), name.clone()))
        .collect()
}

/// Every fallback chain of the filter configuration: its aggregate cluster and the provider
/// clusters it lists, in order.
fn fallback_chains(filter_config: &Value, providers: &HashMap<String, String>) -> Vec<(String, Vec<String>)> {
    let cluster_of = |upstream: &str| {
        providers.iter().find(|(_, name)| name.as_str() == upstream).map(|(cluster, _)| cluster.clone())
    };
    let mut chains: Vec<(String, Vec<String>)> = Vec::new();
    for route in filter_config["models"].as_object().into_iter().flat_map(|models| models.values()) {
        let targets = match route["targets"].as_array() {
            Some(targets) => targets.clone(),
            None => vec![route.clone()],
        };
        for target in targets {
            let Some(chain) = target["fallback_cluster"].as_str() else { continue };
            let fallbacks = target["fallbacks"].as_array().cloned().unwrap_or_default();
            let members = std::iter::once(&target)
                .chain(fallbacks.iter())
                .filter_map(|entry| cluster_of(entry["upstream"].as_str().unwrap_or_default()))
                .collect();
            if !chains.iter().any(|(name, _)| name == chain) {
                chains.push((chain.to_owned(), members));
            }
        }
    }
    chains
}

/// The fallback chain cluster of `envoy/demo.yaml` (an aggregate cluster with the filter's
/// upstream role): the model for every chain of a test.
fn template_chain_cluster(template: &Value) -> Result<Value, String> {
    let clusters = template["static_resources"]["clusters"].as_array().ok_or("the template has no clusters")?;
    clusters
        .iter()
        .find(|cluster| cluster["cluster_type"]["name"] == "envoy.clusters.aggregate")
        .cloned()
        .ok_or_else(|| "the template has no aggregate cluster".to_owned())
}

/// An aggregate cluster over `members` with the upstream filter, configured with the filter
/// configuration in the upstream role (keys, limits and cache are the listener filter's business).
fn chain_cluster(template: &Value, name: &str, members: &[String], wasm: &Path, filter_config: &Value) -> Value {
    let mut cluster = template.clone();
    cluster["name"] = json!(name);
    cluster["cluster_type"]["typed_config"]["clusters"] = json!(members);
    let mut upstream_config = filter_config.clone();
    if let Some(config) = upstream_config.as_object_mut() {
        config.remove("keys");
        config.remove("cache");
        config.insert("role".to_owned(), json!("upstream"));
    }
    let options =
        &mut cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    if let Some(filters) = options["http_filters"].as_array_mut() {
        for filter in filters.iter_mut().filter(|filter| filter["name"] == "ai_gateway_upstream") {
            let config = &mut filter["typed_config"]["config"];
            config["vm_config"]["code"]["local"]["filename"] = json!(wasm);
            config["configuration"]["value"] = json!(upstream_config.to_string());
        }
    }
    cluster
}

/// A running Envoy. Dropping it kills the process; so does the test process dying.
pub struct Envoy {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub admin_port: u16,
    log_path: PathBuf,
    _dir: TempDir,
}

fn envoy_command(config: &Path) -> Result<Command, String> {
    let binary = envoy_binary();
    if !binary.exists() {
        return Err(format!("no Envoy at {}: run ./scripts/test.sh (it installs Envoy)", binary.display()));
    }
    let mut command = Command::new(binary);
    command.arg("-c").arg(config);
    Ok(command)
}

/// Runs `envoy --mode validate -c FILE` (from the repository root, as the demo does).
pub fn validate(config: &Path) -> Result<(), String> {
    let output = envoy_command(config)?
        .args(["--mode", "validate"])
        .current_dir(crate::paths::repo_root())
        .output()
        .map_err(|e| format!("could not run Envoy: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() && text.contains(" OK") {
        Ok(())
    } else {
        Err(text)
    }
}

impl Envoy {
    pub fn start(setup: &EnvoySetup) -> Result<Envoy, String> {
        let wasm = filter_wasm();
        if !wasm.exists() {
            return Err(format!("no filter at {}: run ./scripts/test.sh (it builds the .wasm)", wasm.display()));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config_path = dir.path().join("envoy.json");
        let access_log = dir.path().join("access.log");
        let bootstrap = setup.bootstrap(&wasm, &access_log)?;
        if setup.live_reload {
            std::fs::create_dir_all(dir.path().join("filter")).map_err(|e| e.to_string())?;
            write_filter_resource(dir.path(), &wasm, &setup.filter_config)?;
        }
        std::fs::write(&config_path, bootstrap.to_string()).map_err(|e| e.to_string())?;
        Envoy::start_with(&config_path, setup.concurrency, dir)
    }

    /// Starts Envoy on an existing bootstrap file (its admin port must be 0 or free).
    pub fn start_with(config_path: &Path, concurrency: u32, dir: TempDir) -> Result<Envoy, String> {
        let log_path = dir.path().join("envoy.log");
        let admin_path = dir.path().join("admin.txt");
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = envoy_command(config_path)?;
        command
            .args(["--concurrency", &concurrency.to_string(), "--disable-hot-restart", "--log-level", "info"])
            .args(["--file-flush-interval-msec", "100"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .current_dir(crate::paths::repo_root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill Envoy if we die first.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("could not start Envoy: {e}"))?;
        let pid = child.id();
        let mut envoy = Envoy { child, pid, port: 0, admin_port: 0, log_path, _dir: dir };
        envoy.wait_ready(&admin_path)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Envoy exited with {status} while starting:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("Envoy did not become ready in 60 s:\n{}", self.log()));
            }
            if self.admin_port == 0 {
                let address = std::fs::read_to_string(admin_path).unwrap_or_default();
                self.admin_port = address.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            }
            if self.admin_port != 0 && http_get(self.admin_port, "/ready").is_some_and(|r| r.contains("LIVE")) {
                let listeners = http_get(self.admin_port, "/listeners?format=json").unwrap_or_default();
                let listeners: Value = serde_json::from_str(&listeners).unwrap_or(Value::Null);
                let port = &listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"];
                if let Some(port) = port.as_u64() {
                    self.port = port as u16;
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replaces the filter's configuration the way an operator should (write a new file beside the
    /// watched one, rename it over); only for an Envoy started with `live_reload`.
    pub fn replace_filter_config(&self, filter_config: &Value) -> Result<(), String> {
        let dir = self.log_path.parent().ok_or("no run directory")?;
        write_filter_resource(dir, &filter_wasm(), filter_config)
    }

    /// The access log lines written so far (configs made by [`EnvoySetup`]).
    pub fn access_log(&self) -> Vec<Value> {
        let path = self.log_path.with_file_name("access.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// A GET on the admin API (`/stats/prometheus`, `/memory`, ...).
    pub fn admin(&self, path: &str) -> String {
        http_get(self.admin_port, path).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The filter's typed config as `envoy/demo.yaml` declares it, with this module and configuration.
fn wasm_filter(wasm: &Path, filter_config: &Value) -> Result<Value, String> {
    let template = template()?;
    let filters =
        &template["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let mut typed_config = filters
        .as_array()
        .and_then(|filters| filters.iter().find(|f| f["name"] == "ai_gateway"))
        .map(|filter| filter["typed_config"].clone())
        .ok_or("the template has no ai_gateway filter")?;
    typed_config["config"]["vm_config"]["code"]["local"]["filename"] = json!(wasm);
    typed_config["config"]["configuration"]["value"] = json!(filter_config.to_string());
    Ok(typed_config)
}

/// Writes the filter as an extension config resource into `dir/filter/ai_gateway.yaml`, atomically.
fn write_filter_resource(dir: &Path, wasm: &Path, filter_config: &Value) -> Result<(), String> {
    let resource = json!({ "resources": [ {
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": "ai_gateway",
        "typed_config": wasm_filter(wasm, filter_config)?
    } ] });
    let filter_dir = dir.join("filter");
    let next = filter_dir.join("next.tmp");
    std::fs::write(&next, resource.to_string()).map_err(|e| e.to_string())?;
    std::fs::rename(&next, filter_dir.join("ai_gateway.yaml")).map_err(|e| e.to_string())
}

/// A minimal blocking HTTP/1.1 GET on loopback, for the admin API (Envoy refuses HTTP/1.0): the
/// body of a 200 response, else `None`.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then(|| body_of(&response))
}

/// The body of a raw HTTP/1.1 response, de-chunked when the admin API sent it chunked.
fn body_of(response: &str) -> String {
    let Some((head, body)) = response.split_once("\r\n\r\n") else { return String::new() };
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return body.to_owned();
    }
    let mut rest = body;
    let mut out = String::new();
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
