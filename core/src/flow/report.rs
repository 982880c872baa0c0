//! What a request reports: access-log properties and log lines, queued for the host to write.

use super::{LocalReply, RequestFlow};
use crate::metrics::{CacheEvent, Outcome};

impl RequestFlow {
    /// Filter-state properties to set (`wasm.NAME` in access logs); drained by the host.
    pub fn take_properties(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.pending_properties)
    }

    /// Log lines to write; drained by the host. They never hold a key, a whole digest or text.
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending_logs)
    }

    pub(super) fn log(&mut self, event: &str) {
        let key = self.summary.key_id.as_deref().unwrap_or("none");
        let model = self.summary.model.as_deref().unwrap_or("none");
        self.pending_logs.push(format!("ai-gateway: request_id={} key={key} model={model} {event}", self.request_id));
    }

    /// Records how a locally answered request ended.
    pub(super) fn finish_locally(&mut self, reply: &LocalReply) {
        let outcome = if self.summary.cache == Some(CacheEvent::Hit) && reply.status == 200 {
            Outcome::CacheHit
        } else {
            Outcome::of_local_status(reply.status)
        };
        self.summary.outcome = Some(outcome);
        if !matches!(outcome, Outcome::Ok | Outcome::CacheHit) {
            let limit = self.summary.refused_by.map(|l| format!(" limit={}", l.name())).unwrap_or_default();
            self.log(&format!("refused status={} outcome={}{limit}", reply.status, outcome.name()));
        }
        self.record_properties();
    }

    /// Queues the access-log properties known so far that have a value and were not queued yet.
    /// Envoy writes access logs before a Wasm filter's `on_log`, so who and where are recorded when
    /// the request is forwarded, and the outcome and tokens when the response ends.
    pub(super) fn record_properties(&mut self) {
        let s = &self.summary;
        let usage = s.usage;
        let candidates = [
            ("ai_gw_key_id", s.key_id.clone()),
            ("ai_gw_model", s.model.clone()),
            ("ai_gw_upstream", s.upstream.clone()),
            ("ai_gw_cache", s.cache.map(|c| c.name().to_owned())),
            ("ai_gw_limit", s.refused_by.map(|l| l.name().to_owned())),
            ("ai_gw_outcome", s.outcome.map(|o| o.name().to_owned())),
            ("ai_gw_input_tokens", usage.map(|u| u.input_tokens.to_string())),
            ("ai_gw_output_tokens", usage.map(|u| u.output_tokens.to_string())),
        ];
        for (name, value) in candidates {
            let Some(value) = value else { continue };
            if !self.recorded_properties.contains(&name) {
                self.recorded_properties.push(name);
                self.pending_properties.push((name, value));
            }
        }
    }
}
