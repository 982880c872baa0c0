//! End-to-end: the async-openai client library through a real Envoy with the filter.

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs, CreateEmbeddingRequestArgs,
};
use async_openai::Client;
use common::*;
use futures::StreamExt;

fn client(gateway: &TestGateway, key: &str) -> Client<OpenAIConfig> {
    Client::with_config(OpenAIConfig::new().with_api_base(gateway.url("/v1")).with_api_key(key))
}

fn chat(model: &str) -> async_openai::types::CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(model)
        .messages([ChatCompletionRequestUserMessageArgs::default().content("Say hello").build().unwrap().into()])
        .build()
        .unwrap()
}

fn api_error(result: Result<impl std::fmt::Debug, OpenAIError>) -> async_openai::error::ApiError {
    match result {
        Err(OpenAIError::ApiError(error)) => error,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_reaches_the_routed_upstream_with_provider_credentials() {
    let gateway = TestGateway::start().await;
    let response = client(&gateway, ALPHA).chat().create(chat("gpt-mini")).await.unwrap();
    assert_eq!(response.choices[0].message.content.as_deref(), Some("Hello from openai-a"));
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");

    let seen = gateway.openai.last_request().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json()["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(seen.json()["messages"][0]["content"], "Say hello");
    assert_eq!(seen.header("authorization"), Some(OPENAI_PROVIDER_KEY));
    assert_eq!(seen.header("x-ai-gateway-key-id"), Some("alpha"));
    assert_eq!(seen.header("host"), Some("api.openai.test"));
    assert_eq!(seen.header("content-length"), Some(seen.body.len().to_string().as_str()));
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(ALPHA)), "client key leaked upstream: {:?}", seen.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chat_completion_arrives_whole() {
    let gateway = TestGateway::start().await;
    let mut request = chat("gpt-4o");
    request.stream = Some(true);
    let mut stream = client(&gateway, ALPHA).chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(content) = chunk.choices.first().and_then(|c| c.delta.content.clone()) {
            text.push_str(&content);
        }
    }
    assert_eq!(text, "Hello from openai-a");
    assert_eq!(gateway.openai.last_request().unwrap().json()["model"], "gpt-4o");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_the_sdks_own_api_errors() {
    let gateway = TestGateway::start().await;
    let wrong = api_error(client(&gateway, "sk-wrong").chat().create(chat("gpt-mini")).await);
    assert_eq!(wrong.code.as_deref(), Some("invalid_api_key"));
    let none = api_error(client(&gateway, "").chat().create(chat("gpt-mini")).await);
    assert_eq!(none.code.as_deref(), Some("invalid_api_key"));
    let forbidden = api_error(client(&gateway, BETA).chat().create(chat("gpt-mini")).await);
    assert_eq!(forbidden.code.as_deref(), Some("model_not_allowed"));
    let unknown = api_error(client(&gateway, ALPHA).chat().create(chat("gpt-5-turbo")).await);
    assert_eq!(unknown.code.as_deref(), Some("model_not_found"));
    assert!(gateway.openai.requests().is_empty(), "refused requests must not reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_shows_only_the_keys_models() {
    let gateway = TestGateway::start().await;
    let ids = |list: async_openai::types::ListModelResponse| {
        let mut ids: Vec<String> = list.data.into_iter().map(|m| m.id).collect();
        ids.sort();
        ids
    };
    let alpha = ids(client(&gateway, ALPHA).models().list().await.unwrap());
    assert_eq!(alpha, ["claude-haiku", "gpt-4o", "gpt-mini", "split"]);
    let beta = ids(client(&gateway, BETA).models().list().await.unwrap());
    assert_eq!(beta, ["claude-haiku"]);
    let model = client(&gateway, BETA).models().retrieve("claude-haiku").await.unwrap();
    assert_eq!(model.id, "claude-haiku");
    assert!(client(&gateway, BETA).models().retrieve("gpt-4o").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_rotated_keys_work() {
    let gateway = TestGateway::start().await;
    for key in [ROTATED_OLD, ROTATED_NEW] {
        let request = CreateEmbeddingRequestArgs::default().model("gpt-4o").input("hello").build().unwrap();
        let response = client(&gateway, key).embeddings().create(request).await.unwrap();
        assert_eq!(response.data.len(), 1);
        assert_eq!(gateway.openai.last_request().unwrap().header("x-ai-gateway-key-id"), Some("rotated"));
    }
}
