//! Fail closed, attacked the way an outsider would on a real Envoy with two workers: a request
//! reaches a provider only through the filter's decision, whatever HTTP does (HTTP/2 trailers after
//! a body or instead of one, split DATA frames, HTTP/1.1 chunked trailers that Envoy keeps or
//! drops), on a cluster-header route and on a fixed-cluster route; client headers that choose
//! billing never reach a provider; repeated credentials are refused; access logs hold no query.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// One HTTP/2 request sent by hand over cleartext HTTP/2: the headers, the body in `pieces` (one
/// DATA frame each), then a trailing HEADERS frame if `trailers`. Returns the status and body.
async fn h2_request(port: u16, headers: &[(&str, &str)], pieces: &[&str], trailers: bool) -> (u16, Value) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut request =
        http::Request::builder().method("POST").uri(format!("http://127.0.0.1:{port}/v1/chat/completions"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let ends_with_headers = pieces.is_empty() && !trailers;
    let (response, mut stream) = client.send_request(request.body(()).unwrap(), ends_with_headers).unwrap();
    // The gateway may answer (a 413) and reset the stream before the whole body is sent: stop
    // sending then, and read the answer.
    let mut sent_whole = true;
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len() && !trailers;
        if stream.send_data(bytes::Bytes::copy_from_slice(piece.as_bytes()), last).is_err() {
            sent_whole = false;
            break;
        }
    }
    if trailers && sent_whole {
        let mut map = http::HeaderMap::new();
        map.insert("x-t", http::HeaderValue::from_static("1"));
        stream.send_trailers(map).unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(20), response).await.expect("no answer in 20 s").unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

/// One HTTP/1.1 request with a chunked body and a trailer, written by hand; returns the status.
fn http1_chunked_with_trailer(port: u16, key: &str, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (first, second) = body.split_at(body.len() / 2);
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nx-t: 1\r\n\r\n",
        first.len(),
        second.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

const ALLOWED: &str = r#"{"model":"gpt-mini","messages":[{"role":"user","content":"hi"}]}"#;
/// `beta` may use only `claude-*`: this must never reach a provider.
const FORBIDDEN: &str = r#"{"model":"gpt-4o","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}"#;

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Every trailer attack, on a gateway started with `adjust`; `route` names it in failures.
async fn trailer_attacks(route: &str, adjust: impl FnOnce(&mut ai_gateway_integration::envoy::EnvoySetup)) {
    let gateway = Gateway::start_with_setup(filter_config(), adjust).await.unwrap_or_else(|e| panic!("{e}"));
    let port = gateway.envoy.port;
    let (alpha, beta, limited) = (bearer(ALPHA), bearer(BETA), bearer(LIMITED_OPENAI));
    let json_type = ("content-type", "application/json");

    // Forbidden model, body then trailers: refused in OpenAI's format, nothing upstream.
    let (status, body) = h2_request(port, &[("authorization", &beta), json_type], &[FORBIDDEN], true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("model_not_allowed")), "{route}: {body}");
    // The same, the body split over three DATA frames.
    let (a, rest) = FORBIDDEN.split_at(7);
    let (b, c) = rest.split_at(20);
    let (status, _) = h2_request(port, &[("authorization", &beta), json_type], &[a, b, c], true).await;
    assert_eq!(status, 403, "{route}");
    // Headers then trailers, no body at all.
    let (status, body) = h2_request(port, &[("authorization", &alpha), json_type], &[], true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{route}: {body}");
    // A token limit that cannot cover the request: refused before anything is sent.
    let (status, body) = h2_request(port, &[("authorization", &limited), json_type], &[FORBIDDEN], true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")), "{route}: {body}");
    // HTTP/1.1 chunked trailers (kept or dropped by Envoy depending on the setup).
    assert_eq!(http1_chunked_with_trailer(port, BETA, FORBIDDEN), 403, "{route}");
    assert!(gateway.openai.requests().is_empty(), "{route}: a provider received {:?}", gateway.openai.requests());

    // An allowed request with trailers is decided on and rewritten like any other.
    let (status, body) = h2_request(port, &[("authorization", &alpha), json_type], &[ALLOWED], true).await;
    assert_eq!(status, 200, "{route}: {body}");
    assert_eq!(http1_chunked_with_trailer(port, ALPHA, ALLOWED), 200, "{route}");
    let received = gateway.openai.requests();
    assert_eq!(received.len(), 2, "{route}");
    for request in received {
        assert_eq!(request.json()["model"], "gpt-4o-mini-2024-07-18", "{route}");
        assert_eq!(request.header("authorization"), Some(OPENAI_PROVIDER_KEY), "{route}");
        assert_eq!(request.header("x-ai-gateway-key-id"), Some("alpha"), "{route}");
        assert_eq!(request.header("x-t"), None, "{route}: request trailers are not forwarded");
    }
    let log = gateway.envoy.log();
    assert!(!log.contains("panicked") && !log.contains("wasm trap"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_cannot_skip_the_decision_on_a_cluster_header_route() {
    trailer_attacks("cluster-header route", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_cannot_skip_the_decision_on_a_fixed_cluster_route() {
    trailer_attacks("fixed-cluster route with HTTP/1.1 trailers kept", |setup| {
        setup.fixed_cluster = Some("openai_a".to_owned());
        setup.http1_trailers = true;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_headers_stay_home_and_credentials_are_never_ambiguous() {
    let mut config = filter_config();
    config["upstreams"]["openai_b"]["forward_headers"] = json!([MOCK_BEHAVIOR, "openai-organization"]);
    config["models"]["gpt-b"] = json!({ "upstream": "openai_b" });
    let gateway = TestGateway::start_with(config).await;
    let send = |model: &str| {
        gateway
            .http
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(ALPHA)
            .header("openai-organization", "org-victim")
            .header("openai-project", "proj-victim")
            .header("cookie", "session=1")
            .header("openai-beta", "assistants=v2")
            .json(&json!({ "model": model, "messages": [] }))
            .send()
    };
    assert_eq!(send("gpt-4o").await.unwrap().status(), 200);
    let sent = gateway.openai.last_request().unwrap();
    for removed in ["openai-organization", "openai-project", "cookie", "user-agent", "accept-encoding"] {
        assert_eq!(sent.header(removed), None, "{removed} reached the provider");
    }
    assert_eq!(sent.header("openai-beta"), Some("assistants=v2"));
    // An upstream that allows the organization by name receives it.
    assert_eq!(send("gpt-b").await.unwrap().status(), 200);
    let b = gateway.openai_b.last_request().unwrap();
    assert_eq!(b.header("openai-organization"), Some("org-victim"));
    assert_eq!(b.header("openai-project"), None);

    // Two x-api-key headers, valid then bogus (and the reverse), or two Authorization headers.
    let before = gateway.openai.requests().len();
    for (first, second) in [(ALPHA, "bogus"), ("bogus", ALPHA), (ALPHA, ALPHA)] {
        for header in ["x-api-key", "authorization", "api-key"] {
            let (first, second) = match header {
                "authorization" => (bearer(first), bearer(second)),
                _ => (first.to_owned(), second.to_owned()),
            };
            let response = gateway
                .http
                .post(gateway.url("/v1/chat/completions"))
                .header(header, first)
                .header(header, second)
                .json(&json!({ "model": "gpt-4o", "messages": [] }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{header} twice");
        }
    }
    assert_eq!(gateway.openai.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_never_holds_the_query_string() {
    let gateway = TestGateway::start().await;
    let secret = "sk-secret-in-the-query-0123";
    let response = gateway
        .http
        .post(gateway.url(&format!("/v1/chat/completions?api_key={secret}")))
        .json(&json!({ "model": "gpt-4o", "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    drained(&gateway.envoy).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gateway.envoy.access_log();
    assert!(log.iter().any(|line| line["path"] == "/v1/chat/completions"), "{log:?}");
    assert!(!format!("{log:?}").contains(secret));
    assert!(!gateway.envoy.log().contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_own_errors_reach_the_client_in_its_api_format() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = filter_config();
    config["upstreams"]["dead_openai"] = json!({ "cluster": "dead" });
    config["upstreams"]["dead_anthropic"] = json!({ "cluster": "dead", "api": "anthropic" });
    config["models"]["dead-gpt"] = json!({ "upstream": "dead_openai" });
    config["models"]["dead-claude"] = json!({ "upstream": "dead_anthropic" });
    let gateway = Gateway::start_with_setup(config, |setup| setup.clusters.push(("dead".to_owned(), dead_port)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::new();
    // The provider is down: Envoy's 503, as each API's error.
    let response = http
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(ALPHA)
        .json(&json!({ "model": "dead-gpt", "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("upstream"), "{body}");
    let response = http
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", ALPHA)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({ "model": "dead-claude", "max_tokens": 5, "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("api_error")), "{body}");

    // A malformed request (both content-length and chunked) is refused by Envoy's HTTP/1 codec
    // before any filter or local-reply mapping runs: a plain 400, and nothing is forwarded.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", gateway.envoy.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {ALPHA}\r\nContent-Length: 5\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    // A body over the limit over HTTP/2 (Envoy's stream buffers allow more): the filter's 413.
    let big = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(12 << 20));
    let pieces: Vec<&str> = big.as_bytes().chunks(1 << 20).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let (status, body) = h2_request(
        gateway.envoy.port,
        &[("authorization", &bearer(ALPHA)), ("content-type", "application/json")],
        &pieces,
        false,
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("request_too_large")), "{body}");
    assert!(gateway.openai.requests().is_empty());
}

/// A provider over HTTP/1.1 that answers every request with a chunked JSON chat completion and these
/// trailers (Envoy keeps trailers only where `enable_trailers` is set). Returns its port.
fn provider_with_trailers(trailers: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_with_trailers(stream, trailers));
        }
    });
    port
}

fn answer_with_trailers(mut stream: std::net::TcpStream, trailers: &str) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    // The gateway sends a content-length body: read the head, then that many bytes.
    loop {
        let Ok(read) = stream.read(&mut buffer) else { return };
        if read == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                .unwrap_or(0);
            if request.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    let body =
        r#"{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n{trailers}\r\n",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_trailers_are_stripped_like_its_headers() {
    // Found by attacking: trailers reached clients unfiltered, the provider's account headers
    // and forged x-ai-gateway-* among them.
    let trailers = "x-ratelimit-remaining-tokens: provider\r\nset-cookie: provider=1\r\n\
                    openai-organization: org-provider\r\nx-ai-gateway-cache: forged\r\n\
                    x-envoy-ratelimited: true\r\nx-kept: ok\r\n";
    let provider = provider_with_trailers(trailers);
    let config = json!({
        "keys": [ { "id": "alpha", "sha256": sha256_hex(ALPHA) } ],
        "upstreams": { "openai": { "cluster": "openai_a", "headers": { "authorization": OPENAI_PROVIDER_KEY } } },
        "models": { "gpt-4o": { "upstream": "openai" } }
    });
    let mut setup = ai_gateway_integration::envoy::EnvoySetup::new(config, &[("openai_a", provider)]);
    setup.http1_trailers = true;
    let envoy = tokio::task::block_in_place(|| ai_gateway_integration::envoy::Envoy::start(&setup)).unwrap();
    let port = envoy.port;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {ALPHA}\r\n\
             Content-Type: application/json\r\nTE: trailers\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-kept: ok"), "the provider's other trailers pass: {response}");
    let lower = response.to_ascii_lowercase();
    for stripped in [
        "x-ratelimit-remaining-tokens",
        "set-cookie",
        "openai-organization",
        "x-ai-gateway-cache",
        "x-envoy-ratelimited",
    ] {
        assert!(!lower.contains(stripped), "{stripped} reached the client: {response}");
    }
}
