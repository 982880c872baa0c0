//! API-key authentication: reads the client's key from its credential headers and finds it by digest.

use crate::config::{Config, Digest, Key};
use crate::ports::HeaderMap;
use sha2::{Digest as _, Sha256};

/// The headers a client may carry its key in (OpenAI, Anthropic and Azure SDKs respectively).
/// All of them are removed before a request goes upstream.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    NotBearer,
    Conflicting,
    /// The same credential header was sent more than once.
    Repeated,
    /// No configured key has this digest; the first 4 bytes of it identify the key in logs.
    Unknown {
        digest_prefix: [u8; 4],
    },
}

impl AuthError {
    /// A message for the client; never contains the key.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => {
                "No API key provided. Send it as `Authorization: Bearer KEY`, `x-api-key: KEY` or `api-key: KEY`."
            }
            AuthError::NotBearer => "The Authorization header must use the Bearer scheme: `Authorization: Bearer KEY`.",
            AuthError::Conflicting => "Several different API keys were sent; send exactly one.",
            AuthError::Repeated => "A credential header was sent more than once; send it exactly once.",
            AuthError::Unknown { .. } => "Incorrect API key provided.",
        }
    }
}

/// Reads the key from the credential headers. Several headers may carry it only if they agree; a
/// header repeated is refused whatever its values (a proxy or provider may read either copy).
pub fn presented_key(headers: &mut dyn HeaderMap) -> Result<String, AuthError> {
    let mut found: Option<String> = None;
    for name in CREDENTIAL_HEADERS {
        let mut values = headers.get_all(name);
        if values.len() > 1 {
            return Err(AuthError::Repeated);
        }
        let Some(value) = values.pop() else { continue };
        let key = if name == "authorization" {
            let (scheme, rest) = value.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::NotBearer);
            }
            rest.trim().to_owned()
        } else {
            value.trim().to_owned()
        };
        match &found {
            Some(previous) if *previous != key => return Err(AuthError::Conflicting),
            _ => found = Some(key),
        }
    }
    match found {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(AuthError::Missing),
    }
}

pub fn digest(key: &str) -> Digest {
    Sha256::digest(key.as_bytes()).into()
}

/// Authenticates a request: the configured key (and its index) whose digest matches the presented key.
pub fn authenticate<'c>(config: &'c Config, headers: &mut dyn HeaderMap) -> Result<(usize, &'c Key), AuthError> {
    let digest = digest(&presented_key(headers)?);
    let digest_prefix = [digest[0], digest[1], digest[2], digest[3]];
    config.key_by_digest(&digest).ok_or(AuthError::Unknown { digest_prefix })
}

/// Query parameters that carry credentials in some APIs: never accepted, never forwarded.
const CREDENTIAL_QUERY_PARAMETERS: [&str; 9] =
    ["api_key", "apikey", "key", "access_token", "token", "x_api_key", "authorization", "auth", "bearer"];

/// Whether the path's query string carries a credential parameter: by name, in any case or
/// percent-encoding, separated by `&` or `;`, with or without `[]`. (The query is never forwarded
/// anyway; this answers such a client with a clear 401 instead of ignoring its key.)
pub fn query_carries_credential(path: &str) -> bool {
    let Some((_, query)) = path.split_once('?') else { return false };
    query.split(['&', ';']).any(|pair| {
        let raw_name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let name = percent_decoded(&percent_decoded(raw_name)).replace('+', " ");
        let name = name.trim().trim_end_matches("[]").to_ascii_lowercase().replace('-', "_");
        CREDENTIAL_QUERY_PARAMETERS.iter().any(|credential| name == credential.replace('-', "_"))
    })
}

/// `%XX` sequences decoded (invalid ones kept as they are); not UTF-8 checked beyond lossy.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (byte, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(value)) => {
                decoded.push(value);
                i += 3;
            }
            _ => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHeaders, HeaderList};

    #[test]
    fn reads_the_key_from_any_credential_header() {
        let cases: &[(HeaderList, Result<&str, AuthError>)] = &[
            (&[("authorization", "Bearer sk-1")], Ok("sk-1")),
            (&[("authorization", "bearer  sk-1 ")], Ok("sk-1")),
            (&[("x-api-key", "sk-2")], Ok("sk-2")),
            (&[("api-key", "sk-3")], Ok("sk-3")),
            (&[("authorization", "Bearer sk-1"), ("x-api-key", "sk-1")], Ok("sk-1")),
            (&[("authorization", "Bearer sk-1"), ("x-api-key", "sk-2")], Err(AuthError::Conflicting)),
            (&[("x-api-key", "sk-1"), ("api-key", "sk-2")], Err(AuthError::Conflicting)),
            (&[("x-api-key", "sk-1"), ("x-api-key", "bogus")], Err(AuthError::Repeated)),
            (&[("x-api-key", "sk-1"), ("x-api-key", "sk-1")], Err(AuthError::Repeated)),
            (&[("authorization", "Bearer sk-1"), ("authorization", "Bearer sk-1")], Err(AuthError::Repeated)),
            (&[("api-key", "sk-1"), ("api-key", "")], Err(AuthError::Repeated)),
            (&[("authorization", "Basic abc")], Err(AuthError::NotBearer)),
            (&[("authorization", "sk-1")], Err(AuthError::NotBearer)),
            (&[("authorization", "Bearer ")], Err(AuthError::NotBearer)),
            (&[("x-api-key", "")], Err(AuthError::Missing)),
            (&[], Err(AuthError::Missing)),
        ];
        for (headers, expected) in cases {
            let mut headers = FakeHeaders::new(headers);
            assert_eq!(presented_key(&mut headers).as_deref().map_err(|e| *e), *expected, "{headers:?}");
        }
    }

    #[test]
    fn credentials_in_the_query_are_found_in_any_spelling() {
        let cases = [
            ("/v1/chat/completions", false),
            ("/v1/chat/completions?api-version=1&note=key-less", false),
            ("/v1/chat/completions?api_key=x", true),
            ("/v1/chat/completions?x=1;KEY=x", true),
            ("/v1/chat/completions?%61pi_key=x", true),
            ("/v1/chat/completions?api%255Fkey=x", true),
            ("/v1/chat/completions?api+key=x", false),
            ("/v1/chat/completions?access_token[]=x", true),
            ("/v1/chat/completions?Authorization=Bearer%20x", true),
        ];
        for (path, expected) in cases {
            assert_eq!(query_carries_credential(path), expected, "{path}");
        }
    }

    #[test]
    fn digest_is_sha256_hex_of_the_key() {
        assert_eq!(hex::encode(digest("foo")), "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
    }
}
