//! HTTPS (`--tls-cert`, `--tls-key`): HTTP/2 by ALPN, with the same
//! frames, resume, cookies and shutdown as plain HTTP/1.1; HTTP/1.1 over
//! TLS for clients that ask for it; a bad certificate stops start-up.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{StatusCode, Version};
use roomcast::{Config, Server};
use serde_json::json;

use crate::helpers::{spawn_tls, tls_client, HANG};

#[tokio::test]
async fn streams_and_posts_go_over_http2_with_the_same_frames() {
    let app = spawn_tls(|_| {}).await;
    let code = app.create_room().await;
    let token = app.token(&code, "alice").await;

    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.version(), Version::HTTP_2, "h2 chosen by ALPN");

    let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache, no-transform");
    assert!(
        !stream.headers.contains_key("connection"),
        "HTTP/2 forbids connection headers"
    );
    assert_eq!(stream.next_members().await, ["alice"]);

    let posted = app
        .client
        .post(app.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(&token)
        .json(&json!({ "text": "over h2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.version(), Version::HTTP_2);
    assert_eq!(posted.status(), StatusCode::CREATED);
    let message = stream.next_message().await;
    assert_eq!(message.json()["text"], "over h2");
    assert_eq!(message.id.as_deref(), Some("2"));
}

#[tokio::test]
async fn a_multiplexed_stream_resumes_by_cursor_over_http2() {
    let app = spawn_tls(|_| {}).await;
    let (a, b) = (app.create_room().await, app.create_room().await);
    let token = app.join(&a, "mux", true).await;
    let joined = app
        .client
        .post(app.url(&format!("/rooms/{b}/join")))
        .bearer_auth(&token)
        .json(&json!({ "name": "mux", "watch": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), StatusCode::CREATED);
    app.say(&a, "al", "a1").await;
    app.say(&b, "bo", "b1").await;

    // Everything up to now was seen; what follows is what was missed.
    let last = |history: Vec<serde_json::Value>| history.last().unwrap()["id"].clone();
    let seen_a = last(app.whole_history(&a).await);
    let seen_b = last(app.whole_history(&b).await);
    let cursor = format!("{a}:{seen_a},{b}:{seen_b}");
    app.say(&a, "al", "a2").await;
    app.say(&b, "bo", "b2").await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("last-event-id", cursor.parse().unwrap());
    let mut stream = app
        .stream_with(&format!("/events?rooms={a},{b}"), headers)
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let event = stream.next_history().await;
        texts.push(event.json()["text"].as_str().unwrap().to_string());
    }
    texts.sort();
    assert_eq!(texts, ["a2", "b2"], "exactly the missed events");
}

#[tokio::test]
async fn http1_over_tls_still_serves_streams() {
    let mut app = spawn_tls(|_| {}).await;
    let code = app.create_room().await;
    let root = {
        // The same certificate, offered with HTTP/1.1 only.
        let pem = std::fs::read(app_cert(&app)).unwrap();
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        tokio_rustls::rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap()
    };
    app.client = tls_client(root, &[b"http/1.1"]);
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.version(), Version::HTTP_11);
    let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
    app.say(&code, "bob", "over h1 and tls").await;
    assert_eq!(
        stream.next_message().await.json()["text"],
        "over h1 and tls"
    );
}

/// The certificate file the app serves with.
fn app_cert(app: &crate::helpers::TestApp) -> std::path::PathBuf {
    app.config().tls_cert.clone().expect("served with TLS")
}

#[tokio::test]
async fn cookies_are_secure_and_cross_site_forms_refused_over_tls() {
    let app = spawn_tls(|_| {}).await;
    let mut browser = app.browser();
    let response = browser
        .submit(
            "/",
            &[("name", "alice"), ("code", ""), ("action", "create")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.starts_with("__Host-"), "{cookie}");
    let code = response.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/rooms/")
        .to_string();

    // HTTP/2 names the site in :authority, not Host: the Origin check
    // must still know its own pages, and still refuse another site's.
    let send = |origin: String| {
        let request = app
            .client
            .post(app.url(&format!("/rooms/{code}/messages")))
            .header("cookie", browser.cookie.clone().unwrap())
            .header("origin", origin)
            .form(&[("text", "hello")]);
        async move { request.send().await.unwrap() }
    };
    let ours = send(app.base()).await;
    assert_eq!(ours.version(), Version::HTTP_2);
    assert_eq!(ours.status(), StatusCode::CREATED);
    let theirs = send("https://evil.example".into()).await;
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
    let plain = send(format!("http://{}", app.addr)).await;
    assert_eq!(plain.status(), StatusCode::FORBIDDEN, "the scheme counts");
    let texts: Vec<_> = app
        .whole_history(&code)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "message")
        .collect();
    assert_eq!(texts.len(), 1, "only our own page's post is kept");
}

#[tokio::test]
async fn shutdown_ends_open_http2_streams_and_stops() {
    let mut app = spawn_tls(|_| {}).await;
    let code = app.create_room().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
        stream.next_members().await;
        streams.push(stream);
    }
    tokio::time::timeout(HANG, app.shutdown())
        .await
        .expect("shutdown with open HTTP/2 streams");
    for mut stream in streams {
        stream.until_end().await;
    }
}

#[tokio::test]
async fn a_certificate_that_cannot_be_read_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let config = Config {
        db: ":memory:".into(),
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Config::default()
    };
    let Err(err) = Server::open(&config).await else {
        panic!("served with a certificate that is none");
    };
    assert!(err.to_string().contains("cert.pem"), "{err}");

    let missing = Config {
        tls_cert: Some(dir.path().join("missing.pem")),
        ..config
    };
    let Err(err) = Server::open(&missing).await else {
        panic!("served with a missing certificate");
    };
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn a_body_that_never_arrives_whole_is_refused_in_time_and_nothing_is_kept() {
    let app = spawn_tls(|config| config.request_timeout = Duration::from_millis(500)).await;
    let code = app.create_room().await;
    let token = app.token(&code, "alice").await;
    // Half a form, then nothing more, on a stream of a live HTTP/2
    // connection: hyper's HTTP/2 would wait for the rest for ever.
    let half: Vec<Result<&'static str, std::io::Error>> = vec![Ok("text=hel")];
    let body = futures_util::stream::iter(half).chain(futures_util::stream::pending());
    let sent = app
        .client
        .post(app.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "10")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let answer = tokio::time::timeout(HANG, sent)
        .await
        .expect("answered within the request timeout")
        .unwrap();
    assert_eq!(answer.version(), Version::HTTP_2);
    assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    let messages = app.whole_history(&code).await;
    assert!(
        messages.iter().all(|e| e["kind"] != "message"),
        "nothing kept: {messages:?}"
    );
    // The connection still serves the next request.
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_connection_over_the_address_cap_is_closed_without_plain_text() {
    use tokio::io::AsyncReadExt;
    let app = spawn_tls(|config| config.max_connections_per_address = 1).await;
    // The client's one HTTP/2 connection stays open between requests.
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let mut second = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, second.read_to_end(&mut answer))
        .await
        .expect("closed")
        .unwrap();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}
