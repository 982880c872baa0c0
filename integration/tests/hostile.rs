//! Hostile input against a real Envoy, as an attacker would send it: every case gets a clear error
//! or correct handling, never a bypass, a 5xx from the filter, or a crashed VM.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes over one HTTP/1.1 connection; returns the status code and the whole response.
async fn raw(gateway: &TestGateway, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gateway.envoy.port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn chat_body() -> String {
    json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": "hi" } ] }).to_string()
}

/// A plain, valid request still works: the VM is alive and counting.
async fn still_serving(gateway: &TestGateway) {
    let (status, _, body) = gateway.post("/v1/chat/completions", ALPHA, &json!({ "model": "gpt-4o" })).await;
    assert_eq!(status, 200, "{body}");
    let log = gateway.envoy.log();
    assert!(!log.contains("panicked") && !log.contains("wasm trap") && !log.contains("Function: proxy_on"), "{log}");
}

/// One extra request header.
type Header = (&'static str, &'static str);

/// Header names and raw values, as an attacker sets them.
type Credentials = Vec<(&'static str, Vec<u8>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_games_never_bypass_auth() {
    let gateway = TestGateway::start().await;
    let send = |headers: Vec<(&'static str, Vec<u8>)>| {
        let mut request = gateway.http.post(gateway.url("/v1/chat/completions")).body(chat_body());
        for (name, value) in headers {
            request = request.header(name, reqwest::header::HeaderValue::from_bytes(&value).unwrap());
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let bearer = |key: &str| format!("Bearer {key}").into_bytes();
    let cases: Vec<(Credentials, u16)> = vec![
        (vec![("authorization", bearer(ALPHA)), ("x-api-key", ALPHA.into())], 200),
        (vec![("AUTHORIZATION", bearer(ALPHA))], 200),
        (vec![("authorization", bearer("sk-wrong")), ("x-api-key", ALPHA.into())], 401),
        (vec![("authorization", bearer(ALPHA)), ("api-key", BETA.into())], 401),
        (vec![("authorization", b"Basic YWxwaGE6".to_vec()), ("x-api-key", ALPHA.into())], 401),
        (vec![("authorization", bearer(""))], 401),
        (vec![("x-api-key", b"sk-\xff\xfe".to_vec())], 401),
        (vec![("x-ai-gateway-key-id", b"alpha".to_vec())], 401),
        (vec![("x-api-key", ALPHA.to_uppercase().into_bytes())], 401),
    ];
    for (headers, expected) in cases {
        let label = format!("{:?}", headers.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect::<Vec<_>>());
        assert_eq!(send(headers).await, expected, "{label}");
    }
    assert_eq!(gateway.openai.requests().len(), 2, "only the two valid requests went upstream");
    still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_or_correct_handling() {
    let gateway = TestGateway::start().await;
    let post = |body: Vec<u8>, extra: Option<(&'static str, &'static str)>| {
        let mut request = gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).body(body);
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let deep = format!("{{\"model\":\"gpt-4o\",\"x\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
    let cases: Vec<(Vec<u8>, Option<Header>, u16)> = vec![
        (b"{\"model\":\"gpt-4o\xff\"}".to_vec(), None, 400),
        (b"\xef\xbb\xbf{\"model\":\"gpt-4o\"}".to_vec(), None, 400),
        (b"{\"model\":\"gpt-4o\",\"model\":\"split\"}".to_vec(), None, 400),
        (b"{\"model\":{\"$ne\":null}}".to_vec(), None, 400),
        (b"{\"model\":\"gpt-4o\\u0000\"}".to_vec(), None, 404),
        (b"{\"model\":\"GPT-4O\"}".to_vec(), None, 404),
        (b"{\"model\":\"gpt-4o\",\"max_tokens\":1e400}".to_vec(), None, 400),
        (b"null".to_vec(), None, 400),
        (vec![b' '; 1 << 20], None, 400),
        (chat_body().into_bytes(), Some(("content-encoding", "gzip")), 415),
        (chat_body().into_bytes(), Some(("content-encoding", "GZIP, identity")), 415),
        (deep.into_bytes(), None, 200),
    ];
    for (body, extra, expected) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, text) = post(body, extra).await;
        assert_eq!(status, expected, "{preview:?} {extra:?}: {text}");
        if expected != 200 {
            let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            assert!(error["error"]["message"].is_string(), "{text}");
        }
    }
    // The model routed on is the one the upstream reads: nothing with a duplicated or odd model
    // went upstream; the deep body did, unchanged in meaning.
    assert_eq!(gateway.openai.requests().len(), 1);
    still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_paths_and_protocol_tricks() {
    let gateway = TestGateway::start().await;
    // A 100 KB header: Envoy refuses it (431) before the filter; a 20 KB key is just unknown (401).
    let huge = "x".repeat(100 * 1024);
    let response = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .header("x-api-key", &huge)
        .body(chat_body())
        .send()
        .await;
    assert!(response.map(|r| r.status().as_u16()).unwrap_or(431) == 431);
    let big_key = "k".repeat(20 * 1024);
    let (status, _, _) = gateway.post("/v1/chat/completions", &big_key, &json!({ "model": "gpt-4o" })).await;
    assert_eq!(status, 401);

    // Paths: only the exact endpoint paths are forwarded, so auth and routing act on the path the
    // upstream gets. Dot segments, doubled or encoded slashes and case tricks are 404s.
    // (Raw bytes: an HTTP client library would normalise these paths before sending them.)
    let body = chat_body();
    let odd_paths = [
        "/v1/models/../chat/completions",
        "/v1/./chat/completions",
        "/v1//chat/completions",
        "/v1/chat%2Fcompletions",
        "/V1/chat/completions",
        "/v1/chat/completions/",
    ];
    for path in odd_paths {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nauthorization: Bearer {ALPHA}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, response) = raw(&gateway, request.as_bytes()).await;
        assert!(status == 404 || status == 400, "{path}: {response}");
    }
    assert!(gateway.openai.requests().is_empty(), "no odd path reached the upstream");

    // An absolute-URI request with another Host: routed by its path, authenticated like any other.
    let absolute = |key: &str| {
        format!(
            "POST http://api.openai.com/v1/chat/completions HTTP/1.1\r\nHost: internal.example\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    assert_eq!(raw(&gateway, absolute("sk-wrong").as_bytes()).await.0, 401);
    assert_eq!(raw(&gateway, absolute(ALPHA).as_bytes()).await.0, 200);
    let seen = gateway.openai.last_request().unwrap();
    assert_eq!((seen.path.as_str(), seen.header("host")), ("/v1/chat/completions", Some("api.openai.test")));

    // Request smuggling: both content-length and chunked is refused by Envoy's codec.
    let smuggle = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer {ALPHA}\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let (status, _) = raw(&gateway, smuggle.as_bytes()).await;
    assert!(status == 400 || status == 0, "smuggled request status {status}");

    // HTTP/2 (prior knowledge, h2c): the same rules.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let send =
        |key: &'static str| h2.post(gateway.url("/v1/chat/completions")).bearer_auth(key).body(chat_body()).send();
    let ok = send(ALPHA).await.unwrap();
    assert_eq!((ok.version(), ok.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    assert_eq!(send("sk-wrong").await.unwrap().status().as_u16(), 401);
    let (status, _, _) = gateway.post("/v1/models", "", &json!({})).await;
    assert_eq!(status, 401);
    still_serving(&gateway).await;
}
