//! Rooms that expire, and a server that shuts down with streams open.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn an_empty_room_expires_after_the_ttl() {
    let app = spawn_with(|c| c.room_ttl = Duration::from_millis(200)).await;
    let code = app.create_room().await;
    app.say(&code, "al", "anyone?").await;
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let url = app.url(&format!("/rooms/{code}/messages"));
        status = app.client.get(url).send().await.unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
    }
    assert_eq!(status, StatusCode::NOT_FOUND, "the room is gone");
    let response = app
        .post_json(&code, serde_json::json!({"name":"al","text":"hi"}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_room_with_someone_connected_lives_on_and_expires_after_they_go() {
    let app = spawn_with(|c| {
        c.room_ttl = Duration::from_millis(200);
        c.leave_grace = Duration::from_millis(100);
    })
    .await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut stream = alice.stream(&code, 0).await;
    stream.next_history().await;
    tokio::time::sleep(Duration::from_millis(600)).await; // three TTLs
    app.say(&code, "al", "still here").await;
    assert_eq!(stream.next_history().await.json()["text"], "still here");

    drop(stream);
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let response = alice.get(&format!("/rooms/{code}")).await;
        if response.status() == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
    }
    assert!(gone, "the room expired after its last stream closed");
    let response = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
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
