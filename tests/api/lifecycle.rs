//! Rooms that end after their TTL (and say so), and a server that shuts
//! down with streams open.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{eventually, spawn_app, spawn_with, TestApp};
use crate::redis::Redis;

/// Polls the room page until it is no longer there; its status.
async fn page_gone(app: &TestApp, code: &str) -> StatusCode {
    for _ in 0..200 {
        let url = app.url(&format!("/rooms/{code}"));
        let status = app.client.get(url).send().await.unwrap().status();
        if status != StatusCode::SEE_OTHER && status != StatusCode::OK {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("room {code} did not end");
}

/// A room idle past --room-ttl ends: its page and its API say when, for
/// --ended-ttl, during which no new room gets its code; a private room
/// that ended is no room an outsider can learn of.
async fn check_an_idle_room_ends_and_says_when(app: &TestApp) {
    let code = app.create_room().await;
    app.say(&code, "al", "anyone?").await;
    let (private, _key) = app.create_private_room().await;
    assert_eq!(page_gone(app, &code).await, StatusCode::GONE);
    let page = app.client.get(app.url(&format!("/rooms/{code}")));
    let page = page.send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(&format!("<h1>Room {code} ended</h1>")),
        "{page}"
    );
    let today = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    assert!(
        page.contains(&format!("ended on {}", &today[..10])),
        "{page}"
    );

    let response = app.join_as(&code, serde_json::json!({"name":"bo"})).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("ended on"),
        "{body}"
    );
    // al's part went with it: their token reads and says nothing there.
    let response = app
        .post_json(&code, serde_json::json!({"name":"al","text":"hi"}))
        .await;
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::GONE].contains(&response.status()),
        "{}",
        response.status()
    );
    // The home form says so where the code was typed.
    let form = [("name", "cy"), ("code", code.as_str()), ("action", "join")];
    let response = app
        .client
        .post(app.url("/"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("ended on"));

    assert_eq!(page_gone(app, &private).await, StatusCode::NOT_FOUND);
    let response = app
        .join_as(&private, serde_json::json!({"name":"bo"}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_idle_room_ends_after_the_ttl_and_says_when() {
    let app = spawn_with(|c| {
        c.room_ttl = Duration::from_millis(200);
        c.ended_ttl = Some(Duration::from_secs(3600));
    })
    .await;
    check_an_idle_room_ends_and_says_when(&app).await;
}

#[tokio::test]
async fn an_idle_room_ends_after_the_ttl_and_says_when_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(|c| {
        c.redis = Some(url);
        c.room_ttl = Duration::from_millis(200);
        c.ended_ttl = Some(Duration::from_secs(3600));
    })
    .await;
    check_an_idle_room_ends_and_says_when(&app).await;
}

/// Past --ended-ttl the code is no room at all again (404), and free.
async fn check_an_ended_code_is_freed(app: &TestApp) {
    let code = app.create_room().await;
    let mut seen = Vec::new();
    for _ in 0..200 {
        let url = app.url(&format!("/rooms/{code}"));
        let status = app.client.get(url).send().await.unwrap().status();
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Outsiders are sent to the join form while it lives; then it
    // ended; then it is no room.
    assert_eq!(
        seen,
        [
            StatusCode::SEE_OTHER,
            StatusCode::GONE,
            StatusCode::NOT_FOUND
        ]
    );
}

#[tokio::test]
async fn an_ended_rooms_code_is_free_after_the_ended_ttl() {
    let tweak = |c: &mut roomcast::Config| {
        c.room_ttl = Duration::from_millis(300);
        c.ended_ttl = Some(Duration::from_millis(600));
        c.miss_burst = 1000.0; // each poll of the ended code is a miss
    };
    check_an_ended_code_is_freed(&spawn_with(tweak).await).await;
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(move |c| {
        tweak(c);
        c.redis = Some(url);
    })
    .await;
    check_an_ended_code_is_freed(&app).await;
}

/// Past --short-codes, new rooms get five letters, and work as any room:
/// joined by code in any case, through the form and the API.
async fn check_five_letter_codes(app: &TestApp) {
    for _ in 0..2 {
        assert_eq!(app.create_room().await.len(), 4);
    }
    let code = app.create_room().await;
    assert_eq!(code.len(), 5, "{code}");
    let mut bo = app.browser();
    let entered = bo.enter("bo", &code.to_lowercase(), "join").await;
    assert_eq!(entered, code);
    let mut stream = bo.stream(&code, 0).await;
    app.say(&code, "al", "five letters").await;
    assert_eq!(stream.next_message().await.json()["text"], "five letters");
    let history = app.whole_history(&code).await;
    assert!(history.iter().any(|e| e["text"] == "five letters"));
}

#[tokio::test]
async fn past_the_short_code_limit_rooms_get_five_letter_codes() {
    check_five_letter_codes(&spawn_with(|c| c.short_codes = 2).await).await;
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(move |c| {
        c.short_codes = 2;
        c.redis = Some(url);
    })
    .await;
    check_five_letter_codes(&app).await;
}

#[tokio::test]
async fn a_room_with_someone_connected_lives_on_and_expires_after_they_go() {
    let app = spawn_with(|c| {
        c.room_ttl = Duration::from_millis(200);
        c.ended_ttl = Some(Duration::from_secs(3600));
    })
    .await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut stream = alice.stream(&code, 0).await;
    stream.next_history().await;
    tokio::time::sleep(Duration::from_millis(600)).await; // three TTLs
    app.say(&code, "al", "still here").await;
    assert_eq!(stream.next_message().await.json()["text"], "still here");

    drop(stream);
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = alice.get(&format!("/rooms/{code}")).await;
        if response.status() == StatusCode::GONE {
            gone = true;
            break;
        }
    }
    assert!(gone, "the room expired after its last stream closed");
    let response = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(response.status(), StatusCode::GONE);
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_the_server_stops() {
    let mut app = spawn_app().await;
    let code = app.create_room().await;
    let mut member = app.stream(&format!("/rooms/{code}/events?name=al")).await;
    let mut follower = app.stream(&format!("/rooms/{code}/events")).await;
    member.next_members().await;
    follower.next_members().await;

    app.shutdown().await; // panics if the server does not stop
    member.until_end().await;
    follower.until_end().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_after_the_write_timeout() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_with(|c| {
        c.write_timeout = Duration::from_millis(300);
        c.history = 2000;
    })
    .await;
    let code = app.create_room().await;
    // About 4.3 MB of history: more than the kernel buffers of one socket
    // take (4 MB at most here), so the write that sends it has to wait.
    let text = "x".repeat(2000);
    let token = app.token(&code, "al").await;
    let posters: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token) = (
                app.client.clone(),
                app.url(&format!("/rooms/{code}/messages")),
                token.clone(),
            );
            let body = serde_json::json!({"text": text});
            tokio::spawn(async move {
                for _ in 0..250 {
                    let request = client.post(&url).bearer_auth(&token).json(&body);
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await.unwrap();
    }
    // A client with a tiny receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.addr).await.unwrap();
    let request = format!(
        "GET /rooms/{code}/events?since=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stalled.write_all(request.as_bytes()).await.unwrap();

    let open_streams = || async {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("roomcast_streams_open "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    eventually("the stream opened", || async { open_streams().await == 1 }).await;
    eventually("the stalled stream was closed", || async {
        open_streams().await == 0
    })
    .await;
    drop(stalled);
}

#[tokio::test]
async fn an_overlong_address_or_head_is_refused() {
    let app = spawn_app().await;
    let long = format!("/rooms/ABCD/messages?since={}", "9".repeat(9000));
    let response = app.client.get(app.url(&long)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    let huge = "y".repeat(200 * 1024);
    let response = app
        .client
        .get(app.url("/"))
        .header("x-filler", huge)
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(err) => assert!(
            err.is_request() || err.is_connect() || err.is_body(),
            "{err}"
        ),
    }
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
