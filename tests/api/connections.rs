//! How connections are served, seen from raw TCP: one that opens with a
//! stream request is answered by roomcast's own stream writer; any other
//! goes to hyper, with nothing of what was read lost.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, spawn_with, TestApp, HANG};

/// Reads from `socket` until `needle` has arrived (or the end); returns
/// everything read.
async fn read_until(socket: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout(HANG, socket.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{needle:?} never came; got {:?}",
                    String::from_utf8_lossy(&seen)
                )
            })
            .unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(seen).unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

#[tokio::test]
async fn a_stream_opening_a_connection_is_chunked_sse_and_notices_the_client_go() {
    let app = spawn_with(|c| c.leave_grace = Duration::from_millis(100)).await;
    let code = app.create_room().await;
    let mut socket = connect(&app).await;
    // The head arrives in two pieces, split inside a header.
    let request = format!(
        "GET /rooms/{code}/events?name=al HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    );
    let (first, rest) = request.split_at(30);
    socket.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(rest.as_bytes()).await.unwrap();
    let head = read_until(&mut socket, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    for header in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "cache-control: no-cache",
        "x-accel-buffering: no",
    ] {
        assert!(head.contains(header), "{header} missing: {head}");
    }
    app.say(&code, "bo", "hello raw").await;
    let body = read_until(&mut socket, "hello raw").await;
    // Chunk sizes in hex on lines of their own, around the SSE frames.
    let frame_line = body.lines().find(|l| l.contains("hello raw")).unwrap();
    assert!(frame_line.starts_with("data: {"), "{body}");
    assert!(body
        .lines()
        .any(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_hexdigit())));
    drop(socket);
    eventually("al's leave once the connection closed", || async {
        let history = app.history(&code, "").await;
        history.last().is_some_and(|e| e["kind"] == "leave")
    })
    .await;
}

#[tokio::test]
async fn a_stream_refused_on_a_new_connection_gets_a_whole_answer_then_the_end() {
    let app = spawn_with(|_| {}).await;
    let mut socket = connect(&app).await;
    socket
        .write_all(b"GET /rooms/ZZZZ/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(HANG, socket.read_to_string(&mut answer))
        .await
        .expect("the connection closes after the answer")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let length = format!("content-length: {}", body.len());
    assert!(head.to_ascii_lowercase().contains(&length), "{answer}");
    assert!(body.contains("ZZZZ"), "{body}");
}

#[tokio::test]
async fn other_first_requests_go_to_hyper_with_nothing_lost() {
    let app = spawn_with(|_| {}).await;
    let code = app.create_room().await;
    // Two requests back to back on one connection, the first one looking
    // like a stream request for the first few bytes.
    let mut socket = connect(&app).await;
    let requests = format!(
        "GET /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, r#"{"status":"ok"}"#).await;
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    // A stream request after another on the same connection is hyper's
    // too, and still a stream.
    let mut socket = connect(&app).await;
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /rooms/{code}/events HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, "event: members").await;
    assert!(answers.contains("text/event-stream"), "{answers}");
}
