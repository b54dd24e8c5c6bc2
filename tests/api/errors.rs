//! Bad input: a clear JSON error with a fitting status, and nothing changes.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

struct Case {
    what: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    says: &'static str,
}

fn case(
    what: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    says: &'static str,
) -> Case {
    Case {
        what,
        content_type,
        body: body.into(),
        status,
        says,
    }
}

#[tokio::test]
async fn every_bad_post_is_refused_and_nothing_is_stored_or_sent() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let token = app.token(&code, "a").await;
    let mut follower = app.stream(&format!("/rooms/{code}/events")).await;
    follower.next_members().await;

    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    let s = StatusCode::from_u16;
    let cases = [
        case(
            "malformed JSON",
            JSON,
            r#"{"name":"a","text":"#,
            s(400).unwrap(),
            "Malformed",
        ),
        case(
            "JSON array",
            JSON,
            r#"["a","b"]"#,
            s(400).unwrap(),
            "Malformed",
        ),
        case(
            "bad UTF-8 in JSON",
            JSON,
            b"{\"name\":\"a\",\"text\":\"\xff\xfe\"}".to_vec(),
            s(400).unwrap(),
            "Malformed",
        ),
        case(
            "bad UTF-8 in a form",
            FORM,
            "name=a&text=%C3%28",
            s(400).unwrap(),
            "UTF-8",
        ),
        case(
            "raw bad UTF-8 in a form",
            FORM,
            b"name=a&text=\xc3\x28".to_vec(),
            s(400).unwrap(),
            "UTF-8",
        ),
        case(
            "text is a number",
            JSON,
            r#"{"name":"a","text":5}"#,
            s(400).unwrap(),
            "Malformed",
        ),
        case(
            "name is an object",
            JSON,
            r#"{"name":{},"text":"hi"}"#,
            s(400).unwrap(),
            "Malformed",
        ),
        case(
            "plain text body",
            Some("text/plain"),
            "hi",
            s(415).unwrap(),
            "application/json",
        ),
        case(
            "no content type",
            None,
            "hi",
            s(415).unwrap(),
            "application/json",
        ),
        case(
            "empty text",
            JSON,
            r#"{"name":"a","text":""}"#,
            s(422).unwrap(),
            "Please enter a message.",
        ),
        case(
            "whitespace text",
            JSON,
            r#"{"name":"a","text":" \n\t "}"#,
            s(422).unwrap(),
            "Please enter a message.",
        ),
        case(
            "missing text",
            JSON,
            r#"{"name":"a"}"#,
            s(422).unwrap(),
            "Please enter a message.",
        ),
        case(
            "null text",
            JSON,
            r#"{"name":"a","text":null}"#,
            s(422).unwrap(),
            "Please enter a message.",
        ),
        case(
            "someone else's name",
            JSON,
            r#"{"name":"b","text":"hi"}"#,
            s(422).unwrap(),
            "the name you joined with",
        ),
        case(
            "long name",
            JSON,
            format!(r#"{{"name":"{}","text":"hi"}}"#, "n".repeat(33)),
            s(422).unwrap(),
            "the name you joined with",
        ),
        case(
            "name with a control character",
            JSON,
            r#"{"name":"a\u0007","text":"hi"}"#,
            s(422).unwrap(),
            "the name you joined with",
        ),
        case(
            "long text",
            JSON,
            format!(r#"{{"name":"a","text":"{}"}}"#, "é".repeat(2001)),
            s(422).unwrap(),
            "at most 2000 characters",
        ),
        case(
            "body over 16 KiB",
            JSON,
            format!(r#"{{"name":"a","text":"{}"}}"#, "x".repeat(16 * 1024)),
            s(413).unwrap(),
            "16 KiB",
        ),
    ];
    for case in cases {
        let mut request = app
            .client
            .post(app.url(&format!("/rooms/{code}/messages")))
            .bearer_auth(&token)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.what);
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", case.what));
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no error field", case.what));
        assert!(error.contains(case.says), "{}: {error:?}", case.what);
    }

    let history = app.history(&code, "?since=0").await;
    assert_eq!(history.len(), 1, "nothing was stored but a's join");
    app.say(&code, "a", "the first real message").await;
    let first = follower.next_history().await;
    assert_eq!(
        first.json()["text"],
        "the first real message",
        "nothing was sent before it"
    );
    assert_eq!(first.id.as_deref(), Some("2"), "no id was used up");
}

#[tokio::test]
async fn a_long_text_within_the_limit_is_accepted() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let text = "é".repeat(2000); // 4000 bytes, 2000 characters
    assert_eq!(app.say(&code, "a", &text).await["text"], text.as_str());
}

#[tokio::test]
async fn unknown_rooms_are_404_to_join_and_to_the_page_and_401_to_read() {
    let app = spawn_app().await;
    let response = app.join_as("QQQQ", serde_json::json!({"name":"a"})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Room QQQQ does not exist.");
    let page = app.client.get(app.url("/rooms/QQQQ")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    // Reading or writing needs a participant, whether or not the room is
    // there, so these say nothing about it.
    for path in ["/rooms/QQQQ/messages", "/rooms/QQQQ/events"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn only_well_formed_codes_are_routed() {
    let app = spawn_app().await;
    for path in [
        "/rooms/AB1D/messages",
        "/rooms/ABCDEF/events",
        "/rooms/ABC",
        "/nowhere",
        "/rooms//messages",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
    for path in ["/rooms/AB1D/messages", "/rooms/AB1D/join"] {
        let response = app
            .client
            .post(app.url(path))
            .json(&serde_json::json!({"name":"a","text":"hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn bad_queries_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let token = app.reader(&code).await;
    let cases = [
        (
            Method::GET,
            format!("/rooms/{code}/messages?since=abc"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/rooms/{code}/messages?limit=-1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/rooms/{code}/events?since=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("/rooms/{code}/messages"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/rooms".to_string(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, status) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{method} {path}");
    }
}

#[tokio::test]
async fn head_is_answered_on_every_get_route_with_no_body() {
    let app = crate::helpers::spawn_app().await;
    let code = app.create_room().await;
    for (path, status) in [
        ("/".to_string(), StatusCode::OK),
        ("/healthz".to_string(), StatusCode::OK),
        ("/metrics".to_string(), StatusCode::OK),
        ("/assets/app.js".to_string(), StatusCode::OK),
        (format!("/rooms/{code}/messages"), StatusCode::UNAUTHORIZED),
        (format!("/rooms/{code}/events"), StatusCode::UNAUTHORIZED),
        ("/nowhere".to_string(), StatusCode::NOT_FOUND),
    ] {
        let get = app.client.get(app.url(&path)).send().await.unwrap();
        let head = app.client.head(app.url(&path)).send().await.unwrap();
        assert_eq!(head.status(), status, "HEAD {path}");
        assert_eq!(get.status(), status, "GET {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path}: no body"
        );
    }
    // A participant's stream answers HEAD with its head, and ends.
    let token = app.token(&code, "al").await;
    let head = app
        .client
        .head(app.url(&format!("/rooms/{code}/events")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-type"], "text/event-stream");
    assert!(head.bytes().await.unwrap().is_empty());
}
