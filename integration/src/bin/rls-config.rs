//! Writes the configuration of Envoy's global rate limit service (envoyproxy/ratelimit's YAML:
//! domain, descriptors, units) from the gateway's own configuration, so that limits are written
//! once. Usage: `rls-config [--domain NAME] FILE`, where FILE is the filter's JSON configuration or
//! an Envoy config (YAML or JSON) whose `ai_gateway` filter carries it; `-` reads standard input.

use ai_gateway_core::config::{Config, QuotaMode};
use ai_gateway_integration::rls::service_config;
use serde_json::Value;
use std::io::Read;

const HELP: &str = "\
Usage: rls-config [--domain NAME] FILE

Prints the configuration of a global rate limit service (envoyproxy/ratelimit's YAML) for the
limits of every key in the gateway's configuration. FILE is the filter's JSON configuration, or an
Envoy config (YAML or JSON) whose `ai_gateway` HTTP filter carries it inline; `-` reads standard
input. The domain is the configuration's `quota.domain` (default: ai-gateway); --domain overrides it.
It must match the domain of Envoy's rate limit filter.";

fn main() {
    match run(std::env::args().skip(1).collect()) {
        Ok(yaml) => print!("{yaml}"),
        Err(message) => {
            eprintln!("rls-config: {message}");
            std::process::exit(2);
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut domain = None;
    let mut file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(format!("{HELP}\n")),
            "--domain" => domain = Some(args.next().ok_or("--domain needs a value")?),
            _ if file.is_none() => file = Some(arg),
            other => return Err(format!("unexpected argument {other:?}\n\n{HELP}")),
        }
    }
    let file = file.ok_or_else(|| format!("no configuration file given\n\n{HELP}"))?;
    let text = read(&file)?;
    let config = Config::parse(filter_document(&text)?.as_bytes()).map_err(|e| e.to_string())?;
    if config.quota.mode != QuotaMode::Global {
        eprintln!("rls-config: note: this configuration counts its limits locally (`quota.mode` is not \"global\")");
    }
    service_config(&config, domain.as_deref().unwrap_or(&config.quota.domain))
}

fn read(file: &str) -> Result<String, String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))
}

/// The filter's JSON document: the text itself, or the inline configuration of the `ai_gateway`
/// filter of an Envoy config.
fn filter_document(text: &str) -> Result<String, String> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| format!("neither JSON nor YAML: {e}"))?;
    if value.get("keys").is_some() || value.get("models").is_some() {
        return Ok(text.to_owned());
    }
    let mut found = None;
    find_filter_configuration(&value, &mut found);
    found.ok_or_else(|| "no `ai_gateway` filter with an inline configuration in this Envoy config".to_owned())
}

fn find_filter_configuration(value: &Value, found: &mut Option<String>) {
    if found.is_some() {
        return;
    }
    match value {
        Value::Object(object) => {
            if object.get("name").and_then(Value::as_str) == Some("ai_gateway") {
                let inline = &value["typed_config"]["config"]["configuration"]["value"];
                if let Some(document) = inline.as_str() {
                    *found = Some(document.to_owned());
                    return;
                }
            }
            object.values().for_each(|child| find_filter_configuration(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| find_filter_configuration(child, found)),
        _ => {}
    }
}
