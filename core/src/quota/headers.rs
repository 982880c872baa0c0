//! OpenAI's rate-limit response headers (`x-ratelimit-*`, `retry-after`) from limit statuses.

use super::LimitStatus;

/// A duration the way OpenAI writes resets: `20ms`, `1s`, `6m0s`, `1h2m3s`.
pub fn format_duration(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let seconds = ns.div_ceil(1_000_000_000);
    let (hours, minutes, seconds) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// The three headers of one kind (`requests` or `tokens`).
pub fn limit_headers(kind: &'static str, status: LimitStatus) -> [(&'static str, String); 3] {
    let name = |suffix: &str| -> &'static str {
        match (kind, suffix) {
            ("requests", "limit") => "x-ratelimit-limit-requests",
            ("requests", "remaining") => "x-ratelimit-remaining-requests",
            ("requests", _) => "x-ratelimit-reset-requests",
            (_, "limit") => "x-ratelimit-limit-tokens",
            (_, "remaining") => "x-ratelimit-remaining-tokens",
            _ => "x-ratelimit-reset-tokens",
        }
    };
    [
        (name("limit"), status.limit.to_string()),
        (name("remaining"), status.remaining.to_string()),
        (name("reset"), format_duration(status.reset_ns)),
    ]
}

/// `retry-after` (whole seconds, at least 1) and `retry-after-ms`, both honoured by the SDKs.
pub fn retry_after_headers(retry_after_ns: u64) -> [(&'static str, String); 2] {
    let ms = retry_after_ns.div_ceil(1_000_000).max(1);
    [("retry-after", ms.div_ceil(1_000).to_string()), ("retry-after-ms", ms.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_look_like_openais() {
        let cases = [
            (0, "0ms"),
            (1, "1ms"),
            (20_000_000, "20ms"),
            (999_000_000, "999ms"),
            (1_000_000_000, "1s"),
            (1_000_000_001, "2s"),
            (360_000_000_000, "6m0s"),
            (3_723_000_000_000, "1h2m3s"),
        ];
        for (ns, text) in cases {
            assert_eq!(format_duration(ns), text, "{ns}");
        }
    }

    #[test]
    fn headers_by_kind() {
        let status = LimitStatus { limit: 60, remaining: 59, reset_ns: 1_000_000_000 };
        assert_eq!(
            limit_headers("tokens", status),
            [
                ("x-ratelimit-limit-tokens", "60".to_owned()),
                ("x-ratelimit-remaining-tokens", "59".to_owned()),
                ("x-ratelimit-reset-tokens", "1s".to_owned())
            ]
        );
        assert_eq!(limit_headers("requests", status)[1].0, "x-ratelimit-remaining-requests");
        assert_eq!(retry_after_headers(1), [("retry-after", "1".to_owned()), ("retry-after-ms", "1".to_owned())]);
        assert_eq!(retry_after_headers(12_000_000_001)[0].1, "13");
    }
}
