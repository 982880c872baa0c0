//! The `keys` section: ids, digests (one or several, for rotation), allow-lists and limits.

use super::raw::{RawKey, RawLimits};
use super::{ConfigError, Digest, Key, Model, Problem};
use crate::quota::{Limit, LimitKind};
use std::collections::HashMap;

pub(super) fn validate_key(
    i: usize,
    raw: RawKey,
    models: &[Model],
    model_by_name: &HashMap<String, usize>,
    key_by_digest: &mut HashMap<Digest, usize>,
    earlier_keys: &[Key],
) -> Result<Key, ConfigError> {
    let field = format!("keys[{i}]");
    if !is_valid_key_id(&raw.id) {
        return Err(ConfigError::new(format!("{field}.id"), Problem::BadKeyId(raw.id)));
    }
    if raw.sha256.0.is_empty() {
        return Err(ConfigError::new(format!("{field}.sha256"), Problem::NoDigest));
    }
    for (j, hex_digest) in raw.sha256.0.iter().enumerate() {
        let digest_field = format!("{field}.sha256[{j}]");
        let digest = parse_digest(hex_digest).ok_or_else(|| ConfigError::new(&digest_field, Problem::BadDigest))?;
        if let Some(&other) = key_by_digest.get(&digest) {
            let other_key = earlier_keys.get(other).map_or_else(|| raw.id.clone(), |k| k.id.clone());
            return Err(ConfigError::new(digest_field, Problem::DuplicateDigest { other_key }));
        }
        key_by_digest.insert(digest, i);
    }
    let allowed_models =
        raw.models.map(|patterns| validate_allow_list(&field, &patterns, models, model_by_name)).transpose()?;
    let limits = validate_limits(&field, &raw.id, raw.limits.unwrap_or_default())?;
    Ok(Key { id: raw.id, allowed_models, limits, requests_counted_globally: false })
}

/// A key's allow-list, as a flag per model index; every entry must name (or prefix) a model.
fn validate_allow_list(
    field: &str,
    patterns: &[String],
    models: &[Model],
    model_by_name: &HashMap<String, usize>,
) -> Result<Vec<bool>, ConfigError> {
    let mut allowed = vec![false; models.len()];
    for (j, pattern) in patterns.iter().enumerate() {
        if let Some(prefix) = pattern.strip_suffix('*') {
            for (flag, model) in allowed.iter_mut().zip(models) {
                *flag |= model.name.starts_with(prefix);
            }
        } else if let Some(flag) = model_by_name.get(pattern).and_then(|&m| allowed.get_mut(m)) {
            *flag = true;
        } else {
            return Err(ConfigError::new(
                format!("{field}.models[{j}]"),
                Problem::UnknownModelInAllowList(pattern.clone()),
            ));
        }
    }
    Ok(allowed)
}

/// A key's limits, each positive.
fn validate_limits(field: &str, key_id: &str, raw_limits: RawLimits) -> Result<Vec<Limit>, ConfigError> {
    let named_limits = [
        (LimitKind::RequestsPerSecond, raw_limits.requests_per_second),
        (LimitKind::RequestsPerMinute, raw_limits.requests_per_minute),
        (LimitKind::RequestsPerHour, raw_limits.requests_per_hour),
        (LimitKind::RequestsPerDay, raw_limits.requests_per_day),
        (LimitKind::TokensPerMinute, raw_limits.tokens_per_minute),
        (LimitKind::TokensPerHour, raw_limits.tokens_per_hour),
        (LimitKind::TokensPerDay, raw_limits.tokens_per_day),
    ];
    let mut limits = Vec::new();
    for (kind, amount) in named_limits {
        match amount {
            Some(0) => return Err(ConfigError::new(format!("{field}.limits.{}", kind.name()), Problem::ZeroLimit)),
            Some(amount) => limits.push(Limit::new(key_id, kind, amount)),
            None => {}
        }
    }
    Ok(limits)
}

fn is_valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses 64 lowercase hex characters.
pub(super) fn parse_digest(text: &str) -> Option<Digest> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}
