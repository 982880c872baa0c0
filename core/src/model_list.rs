//! The locally answered `GET /v1/models` and `GET /v1/models/{id}`, in OpenAI's or Anthropic's format.

use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::config::{Config, Key};
use serde_json::{json, Value};

fn model_object(name: &str, format: ApiFormat) -> Value {
    match format {
        ApiFormat::OpenAi => json!({ "id": name, "object": "model", "created": 0, "owned_by": "ai-gateway" }),
        ApiFormat::Anthropic => json!({
            "type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"
        }),
    }
}

/// The models this key may use.
pub fn list(config: &Config, key: &Key, format: ApiFormat) -> Vec<u8> {
    let names: Vec<&str> =
        config.models().filter(|(index, _)| key.may_use(*index)).map(|(_, model)| model.name.as_str()).collect();
    let data: Vec<Value> = names.iter().map(|name| model_object(name, format)).collect();
    let body = match format {
        ApiFormat::OpenAi => json!({ "object": "list", "data": data }),
        ApiFormat::Anthropic => json!({
            "data": data, "has_more": false, "first_id": names.first(), "last_id": names.last()
        }),
    };
    body.to_string().into_bytes()
}

/// One model, if it exists and this key may use it.
pub fn retrieve(config: &Config, key: &Key, name: &str, format: ApiFormat) -> Result<Vec<u8>, ApiError> {
    match config.model(name) {
        Some((index, model)) if key.may_use(index) => Ok(model_object(&model.name, format).to_string().into_bytes()),
        _ => Err(ApiError::new(
            ErrorKind::NotFound,
            "model_not_found",
            format!("The model `{name}` does not exist or you do not have access to it."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest;

    fn config() -> Config {
        let document = json!({
            "keys": [ { "id": "k", "sha256": hex::encode(digest("k")), "models": ["b", "c*"] } ],
            "upstreams": { "u": {} },
            "models": { "a": { "upstream": "u" }, "b": { "upstream": "u" }, "c1": { "upstream": "u" } }
        });
        Config::parse(document.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn lists_only_the_keys_models_in_both_formats() {
        let config = config();
        let (_, key) = config.key_by_digest(&digest("k")).unwrap();
        let openai: Value = serde_json::from_slice(&list(&config, key, ApiFormat::OpenAi)).unwrap();
        let ids: Vec<&str> = openai["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!((openai["object"].as_str(), ids), (Some("list"), vec!["b", "c1"]));
        let anthropic: Value = serde_json::from_slice(&list(&config, key, ApiFormat::Anthropic)).unwrap();
        assert_eq!(anthropic["data"][0]["type"], "model");
        assert_eq!((anthropic["first_id"].as_str(), anthropic["last_id"].as_str()), (Some("b"), Some("c1")));
    }

    #[test]
    fn retrieve_hides_models_the_key_may_not_use() {
        let config = config();
        let (_, key) = config.key_by_digest(&digest("k")).unwrap();
        assert!(retrieve(&config, key, "b", ApiFormat::OpenAi).is_ok());
        assert_eq!(retrieve(&config, key, "a", ApiFormat::OpenAi).unwrap_err().status(), 404);
        assert_eq!(retrieve(&config, key, "zz", ApiFormat::OpenAi).unwrap_err().status(), 404);
    }
}
