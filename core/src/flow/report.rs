//! What a request reports: its summary for the metrics, access-log properties and log lines, queued
//! for the host to write. Nothing here holds a key, a whole digest or prompt text.

use super::decision::LocalReply;
use crate::metrics::{Outcome, RequestSummary};

/// The report of one request, filled in as its phases go.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub summary: RequestSummary,
    request_id: String,
    pending_properties: Vec<(&'static str, String)>,
    recorded_properties: Vec<&'static str>,
    pending_logs: Vec<String>,
    summary_taken: bool,
}

impl Report {
    pub fn set_request_id(&mut self, request_id: Option<String>) {
        self.request_id = request_id.unwrap_or_default();
    }

    pub fn log(&mut self, event: &str) {
        let key = self.summary.key_id.as_deref().unwrap_or("none");
        let model = self.summary.model.as_deref().unwrap_or("none");
        self.pending_logs.push(format!("ai-gateway: request_id={} key={key} model={model} {event}", self.request_id));
    }

    /// Records how a locally answered request ended: the outcome its reply was decided with.
    pub fn finish_locally(&mut self, reply: &LocalReply) {
        self.summary.outcome = Some(reply.outcome);
        if !matches!(reply.outcome, Outcome::Ok | Outcome::CacheHit) {
            let limit = self.summary.refused_by.map(|l| format!(" limit={}", l.name())).unwrap_or_default();
            self.log(&format!("refused status={} outcome={}{limit}", reply.status, reply.outcome.name()));
        }
        self.record_properties();
    }

    /// Queues the access-log properties known so far that have a value and were not queued yet.
    /// Envoy writes access logs before a Wasm filter's `on_log`, so who and where are recorded when
    /// the request is forwarded, and the outcome and tokens when the response ends.
    pub fn record_properties(&mut self) {
        type Field = fn(&RequestSummary) -> Option<String>;
        const FIELDS: [(&str, Field); 9] = [
            ("ai_gw_key_id", |s| s.key_id.clone()),
            ("ai_gw_model", |s| s.model.clone()),
            ("ai_gw_upstream", |s| s.upstream.clone()),
            ("ai_gw_cache", |s| s.cache.map(|c| c.name().to_owned())),
            ("ai_gw_limit", |s| s.refused_by.map(|l| l.name().to_owned())),
            ("ai_gw_outcome", |s| s.outcome.map(|o| o.name().to_owned())),
            ("ai_gw_attempts", |s| s.attempts.map(|a| a.to_string())),
            ("ai_gw_input_tokens", |s| s.usage.map(|u| u.input_tokens.to_string())),
            ("ai_gw_output_tokens", |s| s.usage.map(|u| u.output_tokens.to_string())),
        ];
        for (name, field) in FIELDS {
            if self.recorded_properties.contains(&name) {
                continue;
            }
            if let Some(value) = field(&self.summary) {
                self.recorded_properties.push(name);
                self.pending_properties.push((name, value));
            }
        }
    }

    /// Queues a property that is not an access-log field (state handed to the upstream filter).
    pub fn set_property(&mut self, name: &'static str, value: String) {
        self.pending_properties.push((name, value));
    }

    pub fn take_properties(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.pending_properties)
    }

    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending_logs)
    }

    /// The summary for the metrics, once: `None` if it was taken already or the request has no
    /// outcome (it never got past its headers).
    pub fn take_summary(&mut self) -> Option<RequestSummary> {
        if self.summary_taken || self.summary.outcome.is_none() {
            return None;
        }
        self.summary_taken = true;
        Some(self.summary.clone())
    }
}
