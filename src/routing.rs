//! Model routing: resolves a client-facing model name for a key to one upstream target.

use crate::api_error::{ApiError, ErrorKind};
use crate::config::{Config, Key, Target, Upstream};

/// Where a request goes: the target chosen and its upstream.
#[derive(Debug)]
pub struct Resolved<'c> {
    pub model_index: usize,
    pub target: &'c Target,
    pub upstream: &'c Upstream,
}

/// Resolves `model` for `key`; `random` picks among weighted targets.
pub fn resolve<'c>(config: &'c Config, key: &Key, model: &str, random: u64) -> Result<Resolved<'c>, ApiError> {
    let Some((model_index, route)) = config.model(model) else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "model_not_found",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model"));
    };
    if !key.may_use(model_index) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "model_not_allowed",
            format!("This API key is not allowed to use the model `{model}`."),
        )
        .with_param("model"));
    }
    let mut point = random % u64::from(route.total_weight.max(1));
    let target = route
        .targets
        .iter()
        .find(|target| {
            let weight = u64::from(target.weight);
            let hit = point < weight;
            point = point.saturating_sub(weight);
            hit
        })
        .or(route.targets.first());
    let resolved =
        target.and_then(|target| Some(Resolved { model_index, target, upstream: config.upstream(target.upstream)? }));
    resolved.ok_or_else(|| ApiError::new(ErrorKind::Internal, "internal_error", "The model's route has no target."))
}

/// The next number of a splitmix64 sequence: cheap, well-spread randomness for weighted choice.
pub fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest;

    fn config() -> Config {
        let document = serde_json::json!({
            "keys": [
                { "id": "all", "sha256": hex::encode(digest("all")) },
                { "id": "some", "sha256": hex::encode(digest("some")), "models": ["split", "claude-*"] }
            ],
            "upstreams": { "a": {}, "b": {} },
            "models": {
                "split": { "targets": [ { "upstream": "a", "model": "a-model", "weight": 3 },
                                        { "upstream": "b", "weight": 1 } ] },
                "claude-x": { "upstream": "b" },
                "gpt": { "upstream": "a" }
            }
        });
        Config::parse(document.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn allow_lists_and_unknown_models() {
        let config = config();
        let all = config.key_by_digest(&digest("all")).unwrap().1;
        let some = config.key_by_digest(&digest("some")).unwrap().1;
        let cases =
            [(all, "gpt", Ok("a")), (some, "claude-x", Ok("b")), (some, "gpt", Err(403)), (all, "nope", Err(404))];
        for (key, model, expected) in cases {
            let got = resolve(&config, key, model, 0).map(|r| r.upstream.name.as_str()).map_err(|e| e.status());
            assert_eq!(got, expected, "{} {model}", key.id);
        }
    }

    #[test]
    fn weighted_targets_split_in_proportion() {
        let config = config();
        let key = config.key_by_digest(&digest("all")).unwrap().1;
        let mut counts = [0usize; 2];
        for random in 0..4000u64 {
            let resolved = resolve(&config, key, "split", random.wrapping_mul(0x9e37_79b9_7f4a_7c15)).unwrap();
            counts[resolved.target.upstream] += 1;
            assert_eq!(resolved.target.model.is_some(), resolved.upstream.name == "a");
        }
        assert_eq!(counts[0] + counts[1], 4000);
        assert!((2800..=3200).contains(&counts[0]), "{counts:?}");
    }
}
