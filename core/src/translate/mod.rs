//! Translation between the OpenAI Chat Completions and Anthropic Messages APIs, so that a client of
//! one API can call a model whose provider speaks the other and still sees exactly its own API.
//!
//! Pure functions, bytes in, bytes out: request bodies ([`openai_chat_to_anthropic_request`],
//! [`anthropic_to_openai_chat_request`]), non-streaming response bodies
//! ([`anthropic_to_openai_chat_response`], [`openai_chat_to_anthropic_response`]) and error bodies
//! ([`provider_error_to_client`]). What happens to every top-level request field is listed, with
//! the reason, in [`OPENAI_TO_ANTHROPIC_FIELDS`] and [`ANTHROPIC_TO_OPENAI_FIELDS`]; the
//! translations check bodies against these tables, so the tables are the behaviour, not a copy of it.

mod anthropic_to_openai;
mod error;
mod openai_to_anthropic;
pub mod plan;
mod response;

#[cfg(test)]
mod tests_error;
#[cfg(test)]
mod tests_request;
#[cfg(test)]
mod tests_response;

// streams: added by the stream translation

pub use anthropic_to_openai::{anthropic_to_openai_chat_request, ANTHROPIC_TO_OPENAI_FIELDS};
pub use error::provider_error_to_client;
pub use openai_to_anthropic::{openai_chat_to_anthropic_request, OPENAI_TO_ANTHROPIC_FIELDS};
pub use response::{
    anthropic_message_id, anthropic_to_openai_chat_response, anthropic_usage_from_openai, finish_reason_for,
    openai_chat_to_anthropic_response, openai_completion_id, openai_usage_from_anthropic, stop_reason_for,
};

use crate::api_error::{ApiError, ErrorKind};
use serde_json::{Map, Value};

/// What a request translation does with one top-level field of the client's request.
#[derive(Clone, Copy, Debug)]
pub enum FieldAction {
    /// Carried over, renamed or reshaped; the text names where it goes.
    Translated(&'static str),
    /// Left out: the other API has no equivalent and the answer does not depend on it.
    Dropped,
    /// Refused with 400 naming the field whatever its value.
    Refused,
    /// Refused with 400 naming the field unless its value is one that asks for nothing (`accepted`
    /// describes those values; `neutral` decides). Such values are dropped.
    RefusedUnless { accepted: &'static str, neutral: fn(&Value) -> bool },
}

/// One row of a decision table: a top-level request field, what happens to it, and why.
#[derive(Clone, Copy, Debug)]
pub struct FieldRule {
    pub field: &'static str,
    pub action: FieldAction,
    pub why: &'static str,
}

fn bad_request(code: &'static str, param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadRequest, code, message).with_param(param)
}

/// The request body as a JSON object.
fn parse_request(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    serde_json::from_slice::<Map<String, Value>>(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadRequest,
            "invalid_json",
            format!("The request body is not a valid JSON object: {e}"),
        )
    })
}

/// A field that is present and not `null` (both APIs read `null` as absent).
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// Checks every top-level field of `request` against `rules`: unknown fields and refused values
/// are a 400 (`target` names the API the model is served through, for the message).
fn check_fields(request: &Map<String, Value>, rules: &[FieldRule], target: &str) -> Result<(), ApiError> {
    for (key, value) in request {
        if value.is_null() {
            continue;
        }
        let Some(rule) = rules.iter().find(|rule| rule.field == key) else {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "unknown_parameter",
                format!("Unrecognized request argument supplied: {key}. Remove it from the request."),
            ));
        };
        let accepted = match rule.action {
            FieldAction::Translated(_) | FieldAction::Dropped => continue,
            FieldAction::RefusedUnless { accepted, neutral } if !neutral(value) => Some(accepted),
            FieldAction::RefusedUnless { .. } => continue,
            FieldAction::Refused => None,
        };
        let remedy = match accepted {
            Some(accepted) => format!("Remove `{}` or set it to {accepted}.", rule.field),
            None => format!("Remove `{}` from the request.", rule.field),
        };
        return Err(bad_request(
            "unsupported_parameter",
            rule.field,
            format!(
                "`{}` is not supported for this model, which is served through {target}: {} {remedy}",
                rule.field, rule.why
            ),
        ));
    }
    Ok(())
}

/// A member of a JSON object that is present and not `null`.
fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|member| !member.is_null())
}

/// Tool-call arguments (a JSON object encoded as a string; empty means no arguments) as an object.
fn parse_arguments(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("it is JSON but not an object".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Text blocks or parts joined into one string (separate pieces of one message).
fn join_texts<'a>(texts: impl IntoIterator<Item = &'a str>, separator: &str) -> String {
    texts.into_iter().collect::<Vec<_>>().join(separator)
}

pub mod sse_events;
pub mod stream_anthropic_to_openai;
pub mod stream_openai_to_anthropic;
#[cfg(test)]
mod stream_tests;

/// The decision table as documented in docs/translation.md: one Markdown row per field.
pub fn decision_table_markdown(rules: &[FieldRule]) -> String {
    let mut table = String::from("| field | what happens | why |\n| --- | --- | --- |\n");
    for rule in rules {
        let action = match rule.action {
            FieldAction::Translated(target) => format!("sent as `{target}`"),
            FieldAction::Dropped => "dropped".to_owned(),
            FieldAction::Refused => "refused (400)".to_owned(),
            FieldAction::RefusedUnless { accepted, .. } => format!("refused (400) unless {accepted}"),
        };
        let why = rule.why.replace('|', "\\|");
        table.push_str(&format!("| `{}` | {action} | {why} |\n", rule.field));
    }
    table
}

#[cfg(test)]
mod docs_tests {
    use super::*;

    /// docs/translation.md shows both decision tables exactly as the code applies them. Run with
    /// `PRINT_TRANSLATION_TABLES=1` to print them for the page.
    #[test]
    fn the_translation_page_lists_every_field_decision() {
        let page = include_str!("../../../docs/translation.md");
        let tables = [OPENAI_TO_ANTHROPIC_FIELDS, ANTHROPIC_TO_OPENAI_FIELDS].map(decision_table_markdown);
        if std::env::var_os("PRINT_TRANSLATION_TABLES").is_some() {
            println!("{}", tables.join("\n"));
        }
        for table in tables {
            assert!(page.contains(&table), "docs/translation.md is missing or differs from:\n{table}");
        }
    }
}
