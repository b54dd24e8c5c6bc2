//! GET /events?rooms=A,B: one stream over several rooms, its `id:` a
//! cursor over all of them (`ABCD:57,EFGH:12`), resumed exactly.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Joins every room in `codes` as `name` in one session: its token.
async fn one_session(app: &TestApp, codes: &[&str], name: &str) -> String {
    let token = app.join(codes[0], name, true).await;
    for code in &codes[1..] {
        let response = app
            .client
            .post(app.url(&format!("/rooms/{code}/join")))
            .bearer_auth(&token)
            .json(&json!({ "name": name, "watch": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    token
}

fn bearer(token: &str, last_event_id: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(cursor) = last_event_id {
        headers.insert("last-event-id", cursor.parse().unwrap());
    }
    headers
}

/// The next `n` history events: (room, id, text) and the cursor of each.
async fn history(stream: &mut Sse, n: usize) -> Vec<(String, u64, String, String)> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let event = stream.next_history().await;
        let json = event.json();
        seen.push((
            json["room"].as_str().unwrap().to_string(),
            json["id"].as_u64().unwrap(),
            json["text"].as_str().unwrap_or_default().to_string(),
            event.id.clone().expect("every history event has an id"),
        ));
    }
    seen
}

#[tokio::test]
async fn one_stream_carries_both_rooms_in_order_per_room() {
    let app = spawn_app().await;
    let (a, b) = (app.create_room().await, app.create_room().await);
    let token = one_session(&app, &[&a, &b], "mux").await;
    // Both speakers are in before the stream opens: it sees messages only.
    app.say(&a, "al", "a0").await;
    app.say(&b, "bo", "b0").await;
    let path = format!("/events?rooms={a},{b}");
    let mut stream = app.stream_with(&path, bearer(&token, None)).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    // Each room's members frame names its room.
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let event = stream.next().await;
        assert_eq!(event.event, "members");
        rooms.push(event.json()["room"].as_str().unwrap().to_string());
    }
    rooms.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(rooms, expected);
    for i in 1..=3 {
        app.say(&a, "al", &format!("a{i}")).await;
        app.say(&b, "bo", &format!("b{i}")).await;
    }
    let seen = history(&mut stream, 6).await;
    for (room, prefix) in [(&a, "a"), (&b, "b")] {
        let texts: Vec<&str> = seen
            .iter()
            .filter(|(r, ..)| r == room)
            .map(|(_, _, text, _)| text.as_str())
            .collect();
        let want: Vec<String> = (1..=3).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(texts, want, "room {room} in order");
    }
    // The id is the cursor over both rooms, in the order asked for, each
    // at the newest id of that room sent so far.
    let (_, last_id, _, cursor) = seen.last().unwrap();
    let a_newest = seen.iter().filter(|s| s.0 == a).map(|s| s.1).max().unwrap();
    assert_eq!(cursor, &format!("{a}:{a_newest},{b}:{last_id}"));
}

#[tokio::test]
async fn a_cursor_resumes_every_room_exactly() {
    let app = spawn_app().await;
    let (a, b) = (app.create_room().await, app.create_room().await);
    let token = one_session(&app, &[&a, &b], "mux").await;
    app.say(&a, "al", "warm").await;
    app.say(&b, "bo", "warm").await;
    let path = format!("/events?rooms={a},{b}");
    let mut stream = app.stream_with(&path, bearer(&token, None)).await;
    app.say(&a, "al", "a-seen").await;
    app.say(&b, "bo", "b-seen").await;
    let seen = history(&mut stream, 2).await;
    let cursor = seen.last().unwrap().3.clone();
    drop(stream);
    // Missed while away: two in a, three in b.
    for text in ["a1", "a2"] {
        app.say(&a, "al", text).await;
    }
    for text in ["b1", "b2", "b3"] {
        app.say(&b, "bo", text).await;
    }
    let by_header = app.stream_with(&path, bearer(&token, Some(&cursor))).await;
    let by_query = format!("{path}&since={cursor}");
    let by_query = app.stream_with(&by_query, bearer(&token, None)).await;
    for mut resumed in [by_header, by_query] {
        let mut got: Vec<(String, String)> = history(&mut resumed, 5)
            .await
            .into_iter()
            .map(|(room, _, text, _)| (room, text))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> =
            [(&a, "a1"), (&a, "a2"), (&b, "b1"), (&b, "b2"), (&b, "b3")]
                .iter()
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .collect();
        want.sort();
        assert_eq!(got, want, "exactly what was missed");
        // Nothing more: the next thing after a fresh post is that post.
        app.say(&a, "al", "after").await;
        let next = history(&mut resumed, 1).await;
        assert_eq!(next[0].2, "after");
    }
}

#[tokio::test]
async fn a_room_the_credential_has_not_joined_is_refused() {
    let app = spawn_app().await;
    let (a, b) = (app.create_room().await, app.create_room().await);
    let token = one_session(&app, &[&a], "mux").await;
    // Another's room, named in the rooms, in the cursor (header or query),
    // or not a room at all: 403, and the same for each.
    let refused = [
        (format!("/events?rooms={a},{b}"), None),
        (format!("/events?rooms={a}"), Some(format!("{a}:1,{b}:1"))),
        (format!("/events?rooms={a}&since={b}:0"), None),
        (format!("/events?rooms={a},ZZZZ"), None),
    ];
    for (path, cursor) in refused {
        let headers = bearer(&token, cursor.as_deref());
        let response = app
            .client
            .get(app.url(&path))
            .headers(headers)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{path} {cursor:?}"
        );
    }
    // No credential at all: 401, as for one room.
    let response = app
        .client
        .get(app.url(&format!("/events?rooms={a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn too_many_rooms_or_a_bad_cursor_is_a_bad_request() {
    let app = spawn_app().await;
    let a = app.create_room().await;
    let token = one_session(&app, &[&a], "mux").await;
    let fifty_one: Vec<String> = (0..51u32)
        .map(|i| {
            let letter = |n: u32| char::from(b'A' + (n % 26) as u8);
            format!("Q{}{}{}", letter(i / 26), letter(i), letter(i + 7))
        })
        .collect();
    let bad = [
        format!("/events?rooms={}", fifty_one.join(",")),
        "/events".to_string(),
        "/events?rooms=".to_string(),
        "/events?rooms=AB".to_string(),
        format!("/events?rooms={a}&since={a}"),
        format!("/events?rooms={a}&since={a}:1,{a}:2"),
    ];
    for path in bad {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn a_multiplexed_stream_is_one_open_stream() {
    let app = spawn_app().await;
    let codes = [
        app.create_room().await,
        app.create_room().await,
        app.create_room().await,
    ];
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let token = one_session(&app, &refs, "mux").await;
    let path = format!("/events?rooms={}", codes.join(","));
    let mut stream = app.stream_with(&path, bearer(&token, None)).await;
    stream.next_members().await;
    assert_eq!(metric(&app, "roomcast_streams_open").await, 1);
    // Leaving one of its rooms ends it (the page reconnects with the rest).
    let response = app
        .client
        .post(app.url(&format!("/rooms/{}/leave", codes[1])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    stream.until_end().await;
    eventually("the stream is counted closed", || async {
        metric(&app, "roomcast_streams_open").await == 0
    })
    .await;
}

#[tokio::test]
async fn with_redis_a_multiplexed_stream_on_one_node_follows_posts_on_another() {
    let Some(redis) = crate::redis::Redis::start() else {
        return;
    };
    let on = |url: String| spawn_with(move |config| config.redis = Some(url));
    let (one, two) = (on(redis.url()).await, on(redis.url()).await);
    let (a, b) = (one.create_room().await, one.create_room().await);
    let token = one_session(&one, &[&a, &b], "mux").await;
    let path = format!("/events?rooms={a},{b}");
    let mut stream = two.stream_with(&path, bearer(&token, None)).await;
    assert_eq!(stream.status, StatusCode::OK);
    stream.next_members().await;
    one.say(&a, "al", "from a").await;
    one.say(&b, "bo", "from b").await;
    let seen = history(&mut stream, 4).await; // each speaker's join, then the messages
    let texts: Vec<&str> = seen
        .iter()
        .map(|s| s.2.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(texts, ["from a", "from b"]);
    let cursor = seen.last().unwrap().3.clone();
    // Resumed on the first node by the cursor the second one wrote.
    drop(stream);
    one.say(&b, "bo", "missed").await;
    let mut resumed = one.stream_with(&path, bearer(&token, Some(&cursor))).await;
    assert_eq!(history(&mut resumed, 1).await[0].2, "missed");
}
