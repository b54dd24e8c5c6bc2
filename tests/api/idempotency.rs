//! `Idempotency-Key` on posts: a retry of a message is answered with the
//! message stored the first time, and nothing is ever stored twice, on
//! both backends and across a restart.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};
use crate::redis::Redis;

/// Posts `text` as al with `key`; the status and the body.
async fn post(app: &TestApp, code: &str, key: &str, text: &str) -> (StatusCode, Value) {
    let body = json!({ "name": "al", "text": text });
    let response = app
        .post_json_with(code, body, &[("idempotency-key", key)])
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How many messages with `text` the room keeps.
async fn stored(app: &TestApp, code: &str, text: &str) -> usize {
    let history = app.whole_history(code).await;
    history.iter().filter(|e| e["text"] == text).count()
}

async fn check_a_repeated_key_is_answered_with_the_original(app: &TestApp) {
    let code = app.create_room().await;
    let (status, first) = post(app, &code, "k-1", "hello").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = post(app, &code, "k-1", "hello").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again, first, "the original 201, id and time and all");
    // The quoted form of the draft standard names the same key.
    let (status, quoted) = post(app, &code, "\"k-1\"", "hello").await;
    assert_eq!((status, &quoted), (StatusCode::CREATED, &first));
    assert_eq!(stored(app, &code, "hello").await, 1);

    // The same key with other words: refused, and nothing is kept.
    let (status, body) = post(app, &code, "k-1", "goodbye").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Idempotency-Key"));
    assert_eq!(stored(app, &code, "goodbye").await, 0);

    // A key is the sender's own: bob's k-1 is another message.
    let bob = app
        .post_json_with(
            &code,
            json!({"name": "bob", "text": "hello"}),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(bob.status(), StatusCode::CREATED);
    let bob: Value = bob.json().await.unwrap();
    assert_ne!(bob["id"], first["id"]);
    assert_eq!(bob["name"], "bob");
    assert_eq!(stored(app, &code, "hello").await, 2);

    // Keys that are no token: 400, nothing kept.
    for bad in ["", "has space", &"x".repeat(65), "tab\there", "\"\""] {
        let (status, body) = post(app, &code, bad, "bad key").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    // Bytes that are no text: refused too, never read as "no key".
    let token = app.token(&code, "al").await;
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let response = app
        .client
        .post(app.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(token)
        .header("idempotency-key", latin1)
        .json(&json!({ "text": "bad key" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(stored(app, &code, "bad key").await, 0);

    // Without a key, the same words twice are two messages, as ever.
    app.say(&code, "al", "twice").await;
    app.say(&code, "al", "twice").await;
    assert_eq!(stored(app, &code, "twice").await, 2);
}

/// Eight sends of one key at once: each is the original or told to ask
/// again (409, never stored), at least one is stored, and exactly one
/// message is kept; asked again after, every answer is the original.
async fn check_a_key_sent_at_once_is_stored_once(app: &TestApp) {
    let code = app.create_room().await;
    app.token(&code, "al").await;
    let sends = (0..8).map(|_| post(app, &code, "burst", "at once"));
    let answers = futures_util::future::join_all(sends).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(created.iter().all(|body| body["id"] == created[0]["id"]));
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
    }
    assert_eq!(stored(app, &code, "at once").await, 1);
    let (status, again) = post(app, &code, "burst", "at once").await;
    assert_eq!((status, &again), (StatusCode::CREATED, created[0]));
}

#[tokio::test]
async fn a_repeated_idempotency_key_gets_the_original_message() {
    let app = spawn_with(|_| {}).await;
    check_a_repeated_key_is_answered_with_the_original(&app).await;
    check_a_key_sent_at_once_is_stored_once(&app).await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_gets_the_original_message_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(|c| c.redis = Some(url)).await;
    check_a_repeated_key_is_answered_with_the_original(&app).await;
    check_a_key_sent_at_once_is_stored_once(&app).await;
}

/// A message stored just before a restart (its answer lost, say) and sent
/// again after it with its key: the original, and one message kept.
#[tokio::test]
async fn an_idempotency_key_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(|c| c.db = db).await;
    let code = app.create_room().await;
    let (status, first) = post(&app, &code, "before-restart", "kept once").await;
    assert_eq!(status, StatusCode::CREATED);
    app.restart().await;
    let (status, again) = post(&app, &code, "before-restart", "kept once").await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));
    assert_eq!(stored(&app, &code, "kept once").await, 1);
}
