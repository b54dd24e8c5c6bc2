//! Typing: `POST /rooms/CODE/typing` reaches every other stream in the
//! room as `event: typing`, never the typer's own, never history, at most
//! once per 2 s for each participant; with Redis, on every node.

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;

use crate::helpers::{Sse, TestApp};
use crate::redis::Redis;

async fn stream(app: &TestApp, code: &str, token: &str) -> Sse {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    app.stream_with(&format!("/rooms/{code}/events"), headers)
        .await
}

async fn typing(app: &TestApp, code: &str, token: Option<&str>) -> StatusCode {
    let request = app.client.post(app.url(&format!("/rooms/{code}/typing")));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap().status()
}

/// The `typing` frames read before the next message (the marker `text`,
/// which is then said on `app`).
async fn typing_before(app: &TestApp, code: &str, stream: &mut Sse, text: &str) -> Vec<String> {
    app.say(code, "marker", text).await;
    let mut typing = Vec::new();
    loop {
        let event = stream.next().await;
        match event.event.as_str() {
            "message" if event.json()["text"] == text => return typing,
            "typing" => {
                assert_eq!(event.id, None, "not history");
                let json = event.json();
                assert_eq!(json["room"], code);
                typing.push(json["name"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
}

/// alice types on `a`; bob follows on `b`.
async fn check_typing(a: &TestApp, b: &TestApp) {
    let code = a.create_room().await;
    let alice = a.token(&code, "alice").await;
    let bob = b.token(&code, "bob").await;
    let watcher = a.join(&code, "logbot", true).await;
    let mut bobs = stream(b, &code, &bob).await;
    let mut alices = stream(a, &code, &alice).await;
    bobs.next_members().await;
    alices.next_members().await;

    assert_eq!(typing(a, &code, Some(&alice)).await, StatusCode::NO_CONTENT);
    assert_eq!(typing_before(a, &code, &mut bobs, "one").await, ["alice"]);
    assert!(
        typing_before(a, &code, &mut alices, "one again")
            .await
            .is_empty(),
        "never back to the typer"
    );
    // Again at once: answered, not passed on.
    assert_eq!(typing(a, &code, Some(&alice)).await, StatusCode::NO_CONTENT);
    assert!(typing_before(a, &code, &mut bobs, "two").await.is_empty());

    assert_eq!(
        typing(a, &code, Some(&watcher)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(typing(a, &code, None).await, StatusCode::UNAUTHORIZED);
    let history = b.whole_history(&code).await;
    assert!(history.iter().all(|e| e["kind"] != "typing"));
}

#[tokio::test]
async fn typing_reaches_every_other_stream_once_in_two_seconds_and_is_never_history() {
    let app = crate::helpers::spawn_app().await;
    check_typing(&app, &app).await;
}

#[tokio::test]
async fn typing_crosses_nodes_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let node = || {
        let url = redis.url();
        crate::helpers::spawn_with(move |c| c.redis = Some(url))
    };
    let (a, b) = (node().await, node().await);
    check_typing(&a, &b).await;
}

#[tokio::test]
async fn typing_from_another_site_is_refused() {
    let app = crate::helpers::spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let cookie = alice.cookie.clone().unwrap();
    let response = app
        .client
        .post(app.url(&format!("/rooms/{code}/typing")))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let own = app
        .client
        .post(app.url(&format!("/rooms/{code}/typing")))
        .header("cookie", &cookie)
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::NO_CONTENT);
}
