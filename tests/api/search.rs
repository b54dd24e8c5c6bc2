//! `GET /rooms/CODE/messages?q=WORDS`: the messages that have the words,
//! newest first; SQLite's FTS5 index on one node, a scan of the kept log
//! with Redis. What --history lets go of is never found again.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_with, TestApp};
use crate::redis::Redis;

async fn search(app: &TestApp, code: &str, query: &str) -> (StatusCode, Value) {
    let token = app.reader(code).await;
    let url = app.url(&format!("/rooms/{code}/messages?{query}"));
    let response = app.client.get(url).bearer_auth(token).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn found(app: &TestApp, code: &str, query: &str) -> Vec<String> {
    let (status, body) = search(app, code, query).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    (body.as_array().unwrap().iter())
        .map(|e| {
            assert_eq!(e["kind"], "message", "{e}");
            e["text"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn check_search(app: &TestApp) {
    let code = app.create_room().await;
    for text in ["Hello world", "hello there", "goodbye, world!", "unrelated"] {
        app.say(&code, "al", text).await;
    }
    app.say(&code, "hello", "a sender's name is not its words")
        .await;
    assert_eq!(
        found(app, &code, "q=hello").await,
        ["hello there", "Hello world"]
    );
    assert_eq!(
        found(app, &code, "q=HEL").await,
        ["hello there", "Hello world"]
    );
    assert_eq!(found(app, &code, "q=hello+world").await, ["Hello world"]);
    // Words repeated count once: nine of one word is one word.
    let nine = format!("q={}", ["world"; 9].join("+"));
    assert_eq!(found(app, &code, &nine).await.len(), 2);
    assert_eq!(
        found(app, &code, "q=world").await,
        ["goodbye, world!", "Hello world"]
    );
    assert!(
        found(app, &code, "q=orld").await.is_empty(),
        "words start where they start"
    );

    // Paging: the newest first, then on below the last one given.
    let (_, first) = search(app, &code, "q=world&limit=1").await;
    assert_eq!(first[0]["text"], "goodbye, world!");
    let below = first[0]["id"].as_u64().unwrap();
    let next = found(app, &code, &format!("q=world&limit=1&before={below}")).await;
    assert_eq!(next, ["Hello world"]);

    // Query syntax is words, never operators.
    for tricky in [
        "q=%22",
        "q=hello+OR+goodbye",
        "q=NEAR%28hello",
        "q=hello*",
        "q=-world",
    ] {
        let (status, body) = search(app, &code, tricky).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{tricky}: {body}"
        );
    }
    assert!(
        found(app, &code, "q=hello+OR+goodbye").await.is_empty(),
        "OR is a word here"
    );
    for bad in [
        "q=",
        "q=%21%21",
        "q=hello&since=1",
        &format!("q={}", "a".repeat(201)),
        "q=a+b+c+d+e+f+g+h+i",
    ] {
        let (status, body) = search(app, &code, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // Outsiders learn nothing.
    let url = app.url(&format!("/rooms/{code}/messages?q=hello"));
    let outsider = app.client.get(url).send().await.unwrap();
    assert_eq!(outsider.status(), StatusCode::UNAUTHORIZED);
}

/// --history 3: of five messages with the word, the three kept are found.
async fn check_what_goes_is_not_found(app: &TestApp) {
    let code = app.create_room().await;
    for i in 1..=5 {
        app.say(&code, "al", &format!("apple {i}")).await;
    }
    assert_eq!(
        found(app, &code, "q=apple").await,
        ["apple 5", "apple 4", "apple 3"]
    );
}

#[tokio::test]
async fn search_finds_messages_by_their_words_in_sqlite() {
    let app = spawn_with(|c| c.history = 3).await;
    check_what_goes_is_not_found(&app).await;
    let app = spawn_with(|_| {}).await;
    check_search(&app).await;
    // FTS5 reads accents aside.
    let code = app.create_room().await;
    app.say(&code, "al", "un café crème").await;
    assert_eq!(found(&app, &code, "q=cafe").await, ["un café crème"]);
}

#[tokio::test]
async fn search_scans_the_kept_log_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(|c| {
        c.redis = Some(url.clone());
        c.history = 3;
    })
    .await;
    check_what_goes_is_not_found(&app).await;
    let app = spawn_with(|c| c.redis = Some(url)).await;
    check_search(&app).await;
}

/// The index is on disk with the messages: found after a restart.
#[tokio::test]
async fn search_finds_what_was_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(|c| c.db = db).await;
    let code = app.create_room().await;
    app.say(&code, "al", "kept across restarts").await;
    app.restart().await;
    assert_eq!(
        found(&app, &code, "q=restarts").await,
        ["kept across restarts"]
    );
}
