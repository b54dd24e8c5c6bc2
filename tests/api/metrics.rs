//! GET /metrics, and the cap on open streams.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_with};

use crate::helpers::metric_in as value;

#[tokio::test]
async fn metrics_count_streams_events_deliveries_and_rejections() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    app.token(&code, "al").await; // a join: one event before the streams open
    let mut first = app.stream(&format!("/rooms/{code}/events")).await;
    let mut second = app.stream(&format!("/rooms/{code}/events")).await;
    first.next_members().await;
    second.next_members().await;
    app.say(&code, "al", "one").await;
    app.say(&code, "al", "two").await;
    first.next_history().await;
    first.next_history().await;
    second.next_history().await;
    second.next_history().await;
    let refused = app
        .post_json(&code, json!({"name": "al", "text": ""}))
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert_eq!(value(&text, "roomcast_streams_open"), 2);
    assert_eq!(value(&text, "roomcast_rooms"), 1);
    assert_eq!(value(&text, "roomcast_events_appended_total"), 3);
    // Two messages to two streams.
    assert_eq!(value(&text, "roomcast_deliveries_total"), 4);
    assert_eq!(
        value(&text, "roomcast_rejected_requests_total{status=\"422\"}"),
        1
    );
    assert_eq!(value(&text, "roomcast_post_seconds_count"), 3);
}

#[tokio::test]
async fn past_max_streams_a_stream_gets_503_with_retry_after() {
    let app = spawn_with(|c| c.max_streams = Some(2)).await;
    let code = app.create_room().await;
    let first = app.stream(&format!("/rooms/{code}/events")).await;
    let _second = app.stream(&format!("/rooms/{code}/events")).await;
    let third = app.stream(&format!("/rooms/{code}/events")).await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(third.headers.get("retry-after").is_some());
    // Posting and pages are not streams: they still work.
    app.say(&code, "al", "still fine").await;

    drop(first);
    crate::helpers::eventually("the freed slot came back", || async {
        app.stream(&format!("/rooms/{code}/events")).await.status == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn metrics_count_refusals_by_reason() {
    let app = spawn_with(|c| {
        c.miss_burst = 1.0;
        c.miss_rate = 0.001;
        c.request_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let code = app.create_room().await;
    let get = |path: String| app.client.get(app.url(&path)).send();
    // Unknown codes: one 404, then 429 for guessing.
    for _ in 0..2 {
        let _ = app.join_as("QQQQ", json!({"name": "x"})).await;
    }
    // Without a credential; from another site; an unknown path.
    assert_eq!(
        get(format!("/rooms/{code}/messages"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = app
        .client
        .post(app.url("/rooms"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get("/nowhere".into()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // A request never finished.
    let mut half = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, b"GET / HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut half, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let text = get("/metrics".into()).await.unwrap().text().await.unwrap();
    for (reason, count) in [
        ("no_room", 1),
        ("guessing", 1),
        ("not_participant", 1),
        ("cross_site", 1),
        ("not_found", 1),
        ("request_timeout", 1),
        ("connections_per_address", 0),
    ] {
        let series = format!("roomcast_refusals_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), count, "{series}");
    }
}
