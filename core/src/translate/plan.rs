//! Which translation a request needs, and the per-response translator that carries it out: the
//! request flow decides only which one applies, everything else happens here.

use super::stream_anthropic_to_openai::AnthropicToOpenAiStream;
use super::stream_openai_to_anthropic::OpenAiToAnthropicStream;
use super::{
    anthropic_to_openai_chat_request, anthropic_to_openai_chat_response, openai_chat_to_anthropic_request,
    openai_chat_to_anthropic_response, provider_error_to_client,
};
use crate::api_error::{ApiError, ApiFormat};
use crate::body_format::BodyFormat;
use crate::config::Api;
use crate::endpoint::ModelEndpoint;

/// A translation between the two APIs the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// An OpenAI Chat Completions client, an Anthropic Messages provider.
    OpenAiChatToAnthropic,
    /// An Anthropic Messages client, an OpenAI Chat Completions provider.
    AnthropicToOpenAiChat,
}

/// How a provider of `provider`'s API can serve a request to `endpoint`: as it is, translated, or
/// not at all (`None`: the Responses, completions and embeddings APIs have no Anthropic equivalent).
pub fn serving(endpoint: ModelEndpoint, provider: Api) -> Option<Option<Translation>> {
    match (endpoint.api() == provider, endpoint, provider) {
        (true, _, _) => Some(None),
        (false, ModelEndpoint::ChatCompletions, Api::Anthropic) => Some(Some(Translation::OpenAiChatToAnthropic)),
        (false, ModelEndpoint::Messages, Api::OpenAi) => Some(Some(Translation::AnthropicToOpenAiChat)),
        (false, _, _) => None,
    }
}

impl Translation {
    /// The endpoint the provider is called at.
    pub fn provider_endpoint(self) -> ModelEndpoint {
        match self {
            Translation::OpenAiChatToAnthropic => ModelEndpoint::Messages,
            Translation::AnthropicToOpenAiChat => ModelEndpoint::ChatCompletions,
        }
    }

    pub fn provider_api(self) -> Api {
        self.provider_endpoint().api()
    }

    /// The request body for the provider, for `model`.
    pub fn request(self, body: &[u8], model: &str, default_max_tokens: u64) -> Result<Vec<u8>, ApiError> {
        match self {
            Translation::OpenAiChatToAnthropic => openai_chat_to_anthropic_request(body, model, default_max_tokens),
            Translation::AnthropicToOpenAiChat => anthropic_to_openai_chat_request(body, model),
        }
    }

    /// The translator of the response the provider sends: with `status` and `format` (JSON or
    /// events). `include_usage`: an OpenAI client asked for the usage chunk of a stream.
    pub fn response(self, status: Option<u16>, format: Option<BodyFormat>, client: &ClientView) -> ResponseTranslator {
        let succeeded = matches!(status, Some(200..=299));
        match (succeeded, format, self) {
            (true, Some(BodyFormat::EventStream), Translation::OpenAiChatToAnthropic) => {
                let stream = AnthropicToOpenAiStream::new(&client.model, client.created, client.include_usage);
                ResponseTranslator(Kind::Stream(Box::new(Stream::ToOpenAi(stream))))
            }
            (true, Some(BodyFormat::EventStream), Translation::AnthropicToOpenAiChat) => ResponseTranslator(
                Kind::Stream(Box::new(Stream::ToAnthropic(OpenAiToAnthropicStream::new(&client.model)))),
            ),
            (true, _, _) => ResponseTranslator(Kind::Whole { translation: self, client: client.clone() }),
            (false, _, _) => ResponseTranslator(Kind::Error { status: status.unwrap_or(502), translation: self }),
        }
    }
}

/// What the client sees of its request: the model it asked for, when, and its stream options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    pub model: String,
    /// Seconds since the epoch, for OpenAI's `created`.
    pub created: u64,
    pub include_usage: bool,
}

#[derive(Debug)]
enum Stream {
    ToOpenAi(AnthropicToOpenAiStream),
    ToAnthropic(OpenAiToAnthropicStream),
}

/// Translates one response as it passes.
#[derive(Debug)]
pub struct ResponseTranslator(Kind);

#[derive(Debug)]
enum Kind {
    /// A whole JSON answer, translated once it has arrived.
    Whole { translation: Translation, client: ClientView },
    /// A provider error, rewritten into the client's error format once it has arrived.
    Error { status: u16, translation: Translation },
    /// An event stream, translated chunk by chunk.
    Stream(Box<Stream>),
}

impl ResponseTranslator {
    /// Whether the body must be held until it has arrived whole.
    pub fn holds_body(&self) -> bool {
        !matches!(self.0, Kind::Stream(_))
    }

    /// The client's bytes for a stream chunk (and, at the end, what the stream still owes).
    pub fn stream_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        let Kind::Stream(stream) = &mut self.0 else { return chunk.to_vec() };
        let (mut out, rest) = match stream.as_mut() {
            Stream::ToOpenAi(s) => (s.feed(chunk), end_of_stream.then(|| s.finish())),
            Stream::ToAnthropic(s) => (s.feed(chunk), end_of_stream.then(|| s.finish())),
        };
        out.extend(rest.unwrap_or_default());
        out
    }

    /// The client's bytes for a held body that has arrived whole.
    pub fn whole_body(&self, body: &[u8]) -> Vec<u8> {
        match &self.0 {
            Kind::Whole { translation, client } => {
                let translated = match translation {
                    Translation::OpenAiChatToAnthropic => {
                        anthropic_to_openai_chat_response(body, &client.model, client.created)
                    }
                    Translation::AnthropicToOpenAiChat => openai_chat_to_anthropic_response(body, &client.model),
                };
                translated.unwrap_or_else(|error| error.body(translation.client_format()))
            }
            Kind::Error { status, translation } => {
                provider_error_to_client(*status, body, translation.provider_api(), translation.client_format())
            }
            Kind::Stream(_) => body.to_vec(),
        }
    }
}

impl Translation {
    /// The client's API format.
    pub fn client_format(self) -> ApiFormat {
        match self {
            Translation::OpenAiChatToAnthropic => ApiFormat::OpenAi,
            Translation::AnthropicToOpenAiChat => ApiFormat::Anthropic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_by_endpoint_and_provider() {
        let cases = [
            (ModelEndpoint::ChatCompletions, Api::OpenAi, Some(None)),
            (ModelEndpoint::Messages, Api::Anthropic, Some(None)),
            (ModelEndpoint::ChatCompletions, Api::Anthropic, Some(Some(Translation::OpenAiChatToAnthropic))),
            (ModelEndpoint::Messages, Api::OpenAi, Some(Some(Translation::AnthropicToOpenAiChat))),
            (ModelEndpoint::Responses, Api::Anthropic, None),
            (ModelEndpoint::Embeddings, Api::Anthropic, None),
            (ModelEndpoint::Completions, Api::Anthropic, None),
        ];
        for (endpoint, provider, expected) in cases {
            assert_eq!(serving(endpoint, provider), expected, "{endpoint:?} {provider:?}");
        }
    }
}

/// How the response headers of an answer change when it is translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedHeaders {
    /// The status the client gets: a successful but compressed answer cannot be translated, so
    /// it becomes a 502.
    pub status: Option<u16>,
    pub remove: Vec<String>,
    pub set: Vec<(&'static str, String)>,
}

/// The headers of a translated answer with the provider's `status`, `format` (`None`: neither JSON
/// nor events) and whether it is `compressed`: another length, and the content type of what the
/// client gets (events for a translated stream, JSON for everything else).
pub fn translated_headers(status: Option<u16>, format: Option<BodyFormat>, compressed: bool) -> TranslatedHeaders {
    let succeeded = matches!(status, Some(200..=299));
    let mut remove = vec!["content-length".to_owned()];
    let mut set = Vec::new();
    let mut status = status;
    if compressed {
        remove.push("content-encoding".to_owned());
        if succeeded {
            status = Some(502);
            set.push((":status", "502".to_owned()));
        }
    }
    let streams = succeeded && !compressed && format == Some(BodyFormat::EventStream);
    if !streams {
        set.push(("content-type", "application/json".to_owned()));
    }
    TranslatedHeaders { status, remove, set }
}
