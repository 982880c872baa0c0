//! Fuzzes the configuration parser: any bytes are either a configuration or an error naming a field.
#![no_main]

use ai_gateway_core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = Config::parse(data) {
        // The message renders without panicking.
        let _ = error.to_string();
    }
});
