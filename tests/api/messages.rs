//! Posting messages and reading history.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn post_rooms_creates_a_room() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/rooms")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let code = body["code"].as_str().unwrap();
    assert_eq!(body["url"], format!("/rooms/{code}"));
    assert!(app.history(code, "").await.is_empty());
}

#[tokio::test]
async fn json_post_returns_the_stored_message() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let response = app
        .post_json(&code, json!({"name": "alice", "text": "hi"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["id"], 2, "after alice's join");
    assert_eq!(message["kind"], "message");
    assert_eq!(message["room"], code.as_str());
    assert_eq!(message["name"], "alice");
    assert_eq!(message["text"], "hi");
    let ts = message["ts"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert_eq!(app.history(&code, "").await.last(), Some(&message));
}

#[tokio::test]
async fn form_post_is_the_same_as_json() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let bob = app.token(&code, "bob").await;
    let response = app
        .client
        .post(app.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(bob)
        .form(&[("text", "two\nlines & more")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["text"], "two\nlines & more");
    assert_eq!(message["name"], "bob");
}

#[tokio::test]
async fn the_session_names_the_poster_and_another_name_is_refused() {
    let app = spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let cookie = alice.cookie.clone().unwrap();
    let post = |body: Value| {
        app.client
            .post(app.url(&format!("/rooms/{code}/messages")))
            .header("cookie", &cookie)
            .json(&body)
            .send()
    };
    let response = post(json!({"text": "who am I"})).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["name"], "alice");
    let forged = post(json!({"name": "mallory", "text": "who am I"}))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = forged.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("(alice)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_browser_form_without_script_gets_303_back_to_the_room() {
    let app = spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let response = alice
        .submit(
            &format!("/rooms/{code}/messages"),
            &[("text", "no js here")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        format!("/rooms/{code}").as_str()
    );
    let html = alice.room_page(&code).await;
    assert!(html.contains("no js here"));

    // The form carries a key made for the page: sent twice (a double
    // click, a resubmit), it is one message.
    let field = r#"name="idempotency_key" value=""#;
    let start = html.find(field).expect("the form has a key") + field.len();
    let key = html[start..start + html[start..].find('"').unwrap()].to_string();
    for _ in 0..2 {
        let form = [("text", "sent twice"), ("idempotency_key", key.as_str())];
        let response = alice
            .submit(&format!("/rooms/{code}/messages"), &form)
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let history = app.whole_history(&code).await;
    let kept = history.iter().filter(|e| e["text"] == "sent twice").count();
    assert_eq!(kept, 1);
    let next = alice.room_page(&code).await;
    assert!(!next.contains(&key), "each page makes its own");

    // Sent at once (the second click lands while the first is being
    // stored): every send is led back to the room, and it is one message.
    let start = next.find(field).unwrap() + field.len();
    let key = next[start..start + next[start..].find('"').unwrap()].to_string();
    let form = [
        ("text", "clicked at once"),
        ("idempotency_key", key.as_str()),
    ];
    let path = app.url(&format!("/rooms/{code}/messages"));
    let sends = (0..6).map(|_| alice.with_cookie(app.client.post(&path)).form(&form).send());
    for answer in futures_util::future::join_all(sends).await {
        assert_eq!(answer.unwrap().status(), StatusCode::SEE_OTHER);
    }
    let history = app.whole_history(&code).await;
    let kept = history.iter().filter(|e| e["text"] == "clicked at once");
    assert_eq!(kept.count(), 1);
}

#[tokio::test]
async fn a_refused_browser_form_shows_the_room_again_with_the_text_kept() {
    let app = spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let long = "x".repeat(2001);
    let response = alice
        .submit(&format!("/rooms/{code}/messages"), &[("text", &long)])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("at most 2000 characters"));
    assert!(html.contains(&long), "the text is put back in the box");
    assert!(app
        .history(&code, "")
        .await
        .iter()
        .all(|e| e["kind"] != "message"));
}

#[tokio::test]
async fn history_pages_forward_with_since_and_limit() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    for i in 1..=9 {
        app.say(&code, "al", &format!("m{i}")).await; // after al's join: ids 1 to 10
    }
    let ids = |events: Vec<Value>| -> Vec<u64> {
        events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
    };
    assert_eq!(
        ids(app.history(&code, "").await),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(app.history(&code, "?since=0").await),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(ids(app.history(&code, "?since=7").await), vec![8, 9, 10]);
    assert_eq!(
        ids(app.history(&code, "?since=2&limit=3").await),
        vec![3, 4, 5]
    );
    assert_eq!(
        ids(app.history(&code, "?limit=2").await),
        vec![9, 10],
        "newest, oldest first"
    );
    assert_eq!(
        ids(app.history(&code, "?since=10").await),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn history_keeps_only_the_newest_events() {
    let app = crate::helpers::spawn_with(|c| c.history = 5).await;
    let code = app.create_room().await;
    for i in 1..=7 {
        app.say(&code, "al", &format!("m{i}")).await; // after al's join: ids 1 to 8
    }
    let events = app.history(&code, "?since=0").await;
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn ids_only_go_up_and_rooms_are_numbered_separately() {
    let app = spawn_app().await;
    let first = app.create_room().await;
    let second = app.create_room().await;
    // Each room's first event is a's join.
    assert_eq!(app.say(&first, "a", "1").await["id"], 2);
    assert_eq!(app.say(&first, "a", "2").await["id"], 3);
    assert_eq!(app.say(&second, "a", "1").await["id"], 2);
    assert_eq!(app.say(&first, "a", "3").await["id"], 4);
}

#[tokio::test]
async fn healthz_answers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_history_read_is_at_most_500_events_and_one_mebibyte() {
    let app = crate::helpers::spawn_app().await;
    let code = app.create_room().await;
    let token = app.reader(&code).await;
    let read = |query: &'static str| {
        let url = app.url(&format!("/rooms/{code}/messages{query}"));
        app.client.get(url).bearer_auth(&token).send()
    };
    let too_many = read("?limit=501").await.unwrap();
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    let body: Value = too_many.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("500"), "{body}");
    assert_eq!(
        read("?limit=100000").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // 200 messages of 2,000 four-byte characters: 1.6 MB in all.
    let big = "\u{1F600}".repeat(2000);
    for _ in 0..200 {
        app.say(&code, "al", &big).await;
    }
    for query in ["?since=0&limit=500", "?limit=500"] {
        let response = read(query).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.bytes().await.unwrap();
        assert!(body.len() <= 1024 * 1024, "{query}: {} bytes", body.len());
        let events: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert!(events.len() > 100, "{query}: {}", events.len());
        let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "{query}: a window"
        );
        if query == "?limit=500" {
            let last = app.history(&code, "?limit=1").await;
            assert_eq!(ids.last(), last[0]["id"].as_u64().as_ref(), "the newest");
        } else {
            assert_eq!(ids[0], 1, "from the first");
        }
    }
    // Paging on from the last one reads the rest.
    assert_eq!(
        app.whole_history(&code).await.len(),
        201,
        "al's join and 200"
    );
}
