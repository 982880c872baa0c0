//! Model routing: resolves a client-facing model name for a key to one upstream target that can
//! serve the endpoint called, in its own API or translated (`upstreams.NAME.api`).

use crate::api_error::{ApiError, ErrorKind};
use crate::config::{Config, Key, Target, Upstream};
use crate::endpoint::ModelEndpoint;
use crate::translate::plan::{serving, Translation};

/// Where a request goes: the target chosen and its upstream.
#[derive(Debug)]
pub struct Resolved<'c> {
    pub model_index: usize,
    pub target: &'c Target,
    pub upstream: &'c Upstream,
    /// The translation between the client's API and the provider's, if they differ.
    pub translation: Option<Translation>,
}

/// Resolves `model` for `key` on `endpoint`; `random` picks among the weighted targets whose upstream
/// can serve that endpoint, in its API or translated (the others cannot answer this request).
pub fn resolve<'c>(
    config: &'c Config,
    key: &Key,
    model: &str,
    endpoint: ModelEndpoint,
    random: u64,
) -> Result<Resolved<'c>, ApiError> {
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
    let serving = || {
        route.targets.iter().filter_map(|target| {
            let upstream = config.upstream(target.upstream)?;
            let translation = serving(endpoint, upstream.api)?;
            Some(Resolved { model_index, target, upstream, translation })
        })
    };
    let total_weight: u64 = serving().map(|resolved| u64::from(resolved.target.weight)).sum();
    let mut point = random % total_weight.max(1);
    let chosen = serving().find(|resolved| {
        let weight = u64::from(resolved.target.weight);
        let hit = point < weight;
        point = point.saturating_sub(weight);
        hit
    });
    chosen.ok_or_else(|| unservable(model, endpoint))
}

/// The error for a model none of whose upstreams can serve the endpoint called.
pub fn unservable(model: &str, endpoint: ModelEndpoint) -> ApiError {
    ApiError::new(
        ErrorKind::BadRequest,
        "unsupported_api",
        format!(
            "The model `{model}` is served by a provider that speaks the Anthropic Messages API, which has no \
             equivalent of /v1{}; call it at /v1/chat/completions or /v1/messages.",
            endpoint.path_suffix()
        ),
    )
    .with_param("model")
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
            "upstreams": { "a": {}, "b": {}, "c": { "api": "anthropic" } },
            "models": {
                "split": { "targets": [ { "upstream": "a", "model": "a-model", "weight": 3 },
                                        { "upstream": "b", "weight": 1 } ] },
                "claude-x": { "upstream": "b" },
                "claude-only": { "upstream": "c" },
                "mixed": { "targets": [ { "upstream": "a", "weight": 1 }, { "upstream": "c", "weight": 1000 } ] },
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
            let got = resolve(&config, key, model, ModelEndpoint::ChatCompletions, 0)
                .map(|r| r.upstream.name.as_str())
                .map_err(|e| e.status());
            assert_eq!(got, expected, "{} {model}", key.id);
        }
    }

    #[test]
    fn only_upstreams_that_can_serve_the_endpoint_are_chosen_translated_where_needed() {
        let config = config();
        let all = config.key_by_digest(&digest("all")).unwrap().1;
        let mut translated = 0;
        for random in 0..2000u64 {
            let chat = resolve(&config, all, "mixed", ModelEndpoint::ChatCompletions, random).unwrap();
            assert_eq!(chat.translation.is_some(), chat.upstream.name == "c");
            translated += usize::from(chat.translation.is_some());
            let embeddings = resolve(&config, all, "mixed", ModelEndpoint::Embeddings, random).unwrap();
            assert_eq!((embeddings.upstream.name.as_str(), embeddings.translation), ("a", None));
        }
        assert!(translated > 1900, "weights 1:1000 between a and c: {translated}");
        let error = resolve(&config, all, "claude-only", ModelEndpoint::Responses, 0).unwrap_err();
        assert_eq!((error.status(), error.code), (400, "unsupported_api"));
        let messages = resolve(&config, all, "gpt", ModelEndpoint::Messages, 0).unwrap();
        assert_eq!(messages.translation, Some(Translation::AnthropicToOpenAiChat));
    }

    #[test]
    fn weighted_targets_split_in_proportion() {
        let config = config();
        let key = config.key_by_digest(&digest("all")).unwrap().1;
        let mut counts = [0usize; 2];
        for random in 0..4000u64 {
            let resolved = resolve(
                &config,
                key,
                "split",
                ModelEndpoint::ChatCompletions,
                random.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )
            .unwrap();
            counts[resolved.target.upstream] += 1;
            assert_eq!(resolved.target.model.is_some(), resolved.upstream.name == "a");
        }
        assert_eq!(counts[0] + counts[1], 4000);
        assert!((2800..=3200).contains(&counts[0]), "{counts:?}");
    }
}
