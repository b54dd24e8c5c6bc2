//! Per-visitor limits: posts, room creation, live rooms, open streams.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_with;

#[tokio::test]
async fn posting_past_the_burst_is_429_with_retry_after_and_stores_nothing() {
    let app = spawn_with(|c| {
        c.post_burst = 3.0;
        c.post_rate = 0.5;
    })
    .await;
    let code = app.create_room().await;
    for i in 0..3 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    let response = app
        .post_json(&code, json!({"name": "al", "text": "one too many"}))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry after {retry}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("too many"));
    let history = app.history(&code, "?since=0").await;
    let messages = history.iter().filter(|e| e["kind"] == "message").count();
    assert_eq!(messages, 3, "nothing stored");
}

#[tokio::test]
async fn each_session_has_its_own_post_allowance() {
    // Both joins come from one address, which a join is charged to (it has
    // no session yet): two of them.
    let app = spawn_with(|c| {
        c.post_burst = 2.0;
        c.post_rate = 0.01;
    })
    .await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut bob = app.browser();
    bob.enter("bob", &code, "join").await;
    let url = format!("/rooms/{code}/messages");
    for person in [0, 0, 1] {
        let person = if person == 0 { &mut alice } else { &mut bob };
        let sent = person.submit(&url, &[("text", "hello")]).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    }
    let refused = alice.submit(&url, &[("text", "my kept draft")]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_some());
    let html = refused.text().await.unwrap();
    assert!(
        html.contains(">my kept draft</textarea>"),
        "the room page keeps the text"
    );
}

#[tokio::test]
async fn room_creation_has_its_own_bucket_and_a_cap_on_live_rooms() {
    let app = spawn_with(|c| {
        c.room_burst = 2.0;
        c.room_rate = 0.01;
    })
    .await;
    for _ in 0..2 {
        app.create_room().await;
    }
    let response = app.client.post(app.url("/rooms")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());

    let capped = spawn_with(|c| c.max_rooms = 2).await;
    capped.create_room().await;
    capped.create_room().await;
    let response = capped
        .client
        .post(capped.url("/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn one_visitor_may_hold_only_so_many_streams() {
    let app = spawn_with(|c| c.max_streams_per_visitor = 2).await;
    let code = app.create_room().await;
    let first = app.stream(&format!("/rooms/{code}/events")).await;
    let _second = app.stream(&format!("/rooms/{code}/events")).await;
    let third = app.stream(&format!("/rooms/{code}/events")).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers.get("retry-after").is_some());
    drop(first);
    crate::helpers::eventually("the freed slot came back", || async {
        app.stream(&format!("/rooms/{code}/events")).await.status == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn guessing_codes_is_slowed_to_the_miss_allowance_and_then_tells_nothing() {
    let app = crate::helpers::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.miss_burst = 10.0;
        c.miss_rate = 0.1;
    })
    .await;
    let real = app.create_room().await;
    let token = app.token(&real, "al").await;
    let join = |code: String, from: &'static str| {
        app.client
            .post(app.url(&format!("/rooms/{code}/join")))
            .header("x-forwarded-for", from)
            .json(&json!({"name": format!("g{}", fastrand::u32(..))}))
            .send()
    };
    // Codes that are no room, from one address: 404 until its allowance
    // is spent, then 429 with Retry-After.
    let mut statuses = Vec::new();
    let guesses = (0..40u8)
        .map(|i| format!("QX{}{}", (b'A' + i / 26) as char, (b'A' + i % 26) as char))
        .filter(|code| *code != real)
        .take(30);
    for guess in guesses {
        let response = join(guess, "203.0.113.7").await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..10], [404; 10], "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Barred, the guesser cannot tell a room from none: the real one
    // answers 429 too, to a join and to its page.
    let response = join(real.clone(), "203.0.113.7").await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = app
        .client
        .get(app.url(&format!("/rooms/{real}")))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    // Everyone else goes on as before, the room's people too.
    let response = join(real.clone(), "198.51.100.1").await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let said = app
        .client
        .post(app.url(&format!("/rooms/{real}/messages")))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"text": "still here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_fresh_session_buys_nothing_joins_and_posts_are_also_the_addresss() {
    let app = crate::helpers::spawn_with(|c| {
        c.join_burst = 40.0;
        c.join_rate = 1.0;
        c.post_burst = 5.0;
        c.post_rate = 0.01;
    })
    .await;
    let code = app.create_room().await;
    // 100 joins with fresh names from one address: refused before 100.
    let mut tokens = Vec::new();
    let mut refused = None;
    for i in 0..100 {
        let response = app.join_as(&code, json!({"name": format!("n{i}")})).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            refused = Some(i);
            break;
        }
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    assert!(
        refused.is_some_and(|i| i <= 41),
        "joins refused at {refused:?}"
    );
    // Posts spread over many sessions of one address: the address's
    // allowance (4 times a session's 5) runs out, not 5 per session.
    let mut created = 0;
    for token in tokens.iter().take(30) {
        for _ in 0..5 {
            let response = app
                .client
                .post(app.url(&format!("/rooms/{code}/messages")))
                .bearer_auth(token)
                .json(&json!({"text": "hi"}))
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::CREATED {
                created += 1;
            } else {
                assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            }
        }
    }
    assert_eq!(created, 20, "the address's 4 x 5");
}
