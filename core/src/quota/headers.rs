//! OpenAI's rate-limit response headers (`x-ratelimit-*`, `retry-after`), built from typed limit
//! statuses: one set for request limits, one for token limits.

use super::{peek_tightest, LimitKind, LimitStatus};
use crate::config::Key;
use crate::ports::SharedStore;

/// The two families of limits, each reported by its own three headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitFamily {
    Requests,
    Tokens,
}

impl LimitFamily {
    pub fn of(kind: LimitKind) -> LimitFamily {
        if kind.counts_tokens() {
            LimitFamily::Tokens
        } else {
            LimitFamily::Requests
        }
    }

    /// The `limit`, `remaining` and `reset` header names of this family.
    fn names(self) -> [&'static str; 3] {
        match self {
            LimitFamily::Requests => {
                ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"]
            }
            LimitFamily::Tokens => {
                ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]
            }
        }
    }
}

/// The rate-limit headers of one response: the tightest status of each family the key has, and how
/// long to wait when the request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitHeaders {
    requests: Option<LimitStatus>,
    tokens: Option<LimitStatus>,
    retry_after_ns: Option<u64>,
}

impl RateLimitHeaders {
    /// Records a family's status (replacing an earlier one); `None` leaves it as it was.
    pub fn set(&mut self, family: LimitFamily, status: Option<LimitStatus>) {
        let slot = match family {
            LimitFamily::Requests => &mut self.requests,
            LimitFamily::Tokens => &mut self.tokens,
        };
        if status.is_some() {
            *slot = status;
        }
    }

    pub fn has(&self, family: LimitFamily) -> bool {
        match family {
            LimitFamily::Requests => self.requests.is_some(),
            LimitFamily::Tokens => self.tokens.is_some(),
        }
    }

    /// Fills each family the key has limits in but this set lacks, with its current status (read
    /// without changing anything): every response to a key with limits carries its headers.
    pub fn fill_missing(&mut self, store: &dyn SharedStore, key: &Key, now_ns: u64) {
        if self.requests.is_none() {
            self.requests = peek_tightest(store, key.request_limits(), now_ns);
        }
        if self.tokens.is_none() {
            self.tokens = peek_tightest(store, key.token_limits(), now_ns);
        }
    }

    /// A refusal: the client should wait this long.
    pub fn set_retry_after(&mut self, retry_after_ns: u64) {
        self.retry_after_ns = Some(retry_after_ns);
    }

    /// The headers, in a stable order: requests, tokens, then `retry-after` and `retry-after-ms`.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        for (family, status) in [(LimitFamily::Requests, self.requests), (LimitFamily::Tokens, self.tokens)] {
            let Some(status) = status else { continue };
            let [limit, remaining, reset] = family.names();
            headers.push((limit, status.limit.to_string()));
            headers.push((remaining, status.remaining.to_string()));
            headers.push((reset, format_duration(status.reset_ns)));
        }
        if let Some(retry_after_ns) = self.retry_after_ns {
            // Both honoured by the SDKs: whole seconds (at least 1), and milliseconds.
            let ms = retry_after_ns.div_ceil(1_000_000).max(1);
            headers.push(("retry-after", ms.div_ceil(1_000).to_string()));
            headers.push(("retry-after-ms", ms.to_string()));
        }
        headers
    }
}

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
    fn headers_by_family_then_retry_after() {
        let status = LimitStatus { limit: 60, remaining: 59, reset_ns: 1_000_000_000 };
        let mut headers = RateLimitHeaders::default();
        assert!(headers.to_headers().is_empty());
        headers.set(LimitFamily::Tokens, Some(status));
        headers.set(LimitFamily::Requests, None);
        assert!(!headers.has(LimitFamily::Requests) && headers.has(LimitFamily::Tokens));
        assert_eq!(
            headers.to_headers(),
            [
                ("x-ratelimit-limit-tokens", "60".to_owned()),
                ("x-ratelimit-remaining-tokens", "59".to_owned()),
                ("x-ratelimit-reset-tokens", "1s".to_owned())
            ]
        );
        headers.set(LimitFamily::Requests, Some(LimitStatus { remaining: 0, ..status }));
        headers.set_retry_after(12_000_000_001);
        let names: Vec<&str> = headers.to_headers().iter().map(|(name, _)| *name).collect();
        assert_eq!(names[1], "x-ratelimit-remaining-requests");
        assert_eq!(&names[6..], ["retry-after", "retry-after-ms"]);
        assert_eq!(headers.to_headers()[6].1, "13");
        headers.set_retry_after(1);
        assert_eq!(headers.to_headers()[6..], [("retry-after", "1".to_owned()), ("retry-after-ms", "1".to_owned())]);
    }
}
