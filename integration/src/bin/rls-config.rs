//! Writes the configuration of Envoy's global rate limit service (envoyproxy/ratelimit's YAML:
//! domain, descriptors, units) from the gateway's own configuration, so that limits are written
//! once. Usage: `rls-config [--domain NAME] FILE`, where FILE is the filter's JSON configuration, an
//! Envoy config (YAML or JSON) whose `ai_gateway` filter carries it, or an Istio EnvoyFilter whose
//! extension config does; `-` reads standard input.

use ai_gateway_integration::rls::service_config_of;
use std::io::Read;

const HELP: &str = "\
Usage: rls-config [--domain NAME] FILE

Prints the configuration of a global rate limit service (envoyproxy/ratelimit's YAML) for the
limits of every key in the gateway's configuration. FILE is the filter's JSON configuration, an
Envoy config (YAML or JSON) whose `ai_gateway` HTTP filter carries it inline, or an Istio
EnvoyFilter (one document) whose extension config does; `-` reads standard input. The domain is
the configuration's `quota.domain` (default: ai-gateway); --domain overrides it. It must match the
domain of Envoy's rate limit filter.";

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
    let (yaml, global) = service_config_of(&read(&file)?, domain.as_deref())?;
    if !global {
        eprintln!("rls-config: note: this configuration counts its limits locally (`quota.mode` is not \"global\")");
    }
    Ok(yaml)
}

fn read(file: &str) -> Result<String, String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))
}
