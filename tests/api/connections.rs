//! How connections are served, seen from raw TCP: streams and messages are
//! answered by roomcast's own writer (messages on a kept-alive connection,
//! one after another); any other request goes to hyper, with nothing of
//! what was read lost, and the next request comes back; a request that
//! cannot be read is refused with the headers every response carries.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, spawn_app, spawn_with, TestApp, HANG};

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

/// Checks that each of `headers` (lowercase) is in the answer's head.
fn assert_headers(answer: &str, headers: &[&str]) {
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    for header in headers {
        assert!(head.contains(header), "{header} missing: {answer}");
    }
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(socket: &mut TcpStream) -> String {
    let mut answer = String::new();
    tokio::time::timeout(HANG, socket.read_to_string(&mut answer))
        .await
        .expect("the connection closes after the answer")
        .unwrap();
    answer
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

#[tokio::test]
async fn a_stream_opening_a_connection_is_chunked_sse_and_notices_the_client_go() {
    let app = spawn_with(|_| {}).await;
    let code = app.create_room().await;
    let token = app.token(&code, "al").await;
    let mut socket = connect(&app).await;
    // The head arrives in two pieces, split inside a header.
    let request = format!(
        "GET /rooms/{code}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    let (first, rest) = request.split_at(30);
    socket.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(rest.as_bytes()).await.unwrap();
    let head = read_until(&mut socket, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_headers(
        &head,
        &[
            "content-type: text/event-stream",
            "transfer-encoding: chunked",
            "cache-control: no-cache",
            "x-accel-buffering: no",
            "date: ",
        ],
    );
    app.say(&code, "bo", "hello raw").await;
    let body = read_until(&mut socket, "hello raw").await;
    // Chunk sizes in hex on lines of their own, around the SSE frames.
    let frame_line = body.lines().find(|l| l.contains("hello raw")).unwrap();
    assert!(frame_line.starts_with("data: {"), "{body}");
    assert!(body
        .lines()
        .any(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_hexdigit())));
    drop(socket);
    eventually("the stream is closed once the connection is", || async {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
        metrics
            .text()
            .await
            .unwrap()
            .contains("\nroomcast_streams_open 0\n")
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
    let answer = read_to_close(&mut socket).await;
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let length = format!("content-length: {}", body.len());
    assert!(head.to_ascii_lowercase().contains(&length), "{answer}");
    assert!(body.contains("join the room first"), "{body}");
}

#[tokio::test]
async fn other_first_requests_go_to_hyper_with_nothing_lost() {
    let (app, code, _) = room_and_connection().await;
    let token = &code.token;
    // Two requests back to back on one connection, the first one looking
    // like a stream request for the first few bytes.
    let mut socket = connect(&app).await;
    let requests = format!(
        "GET /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, r#"{"status":"ok"}"#).await;
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    // A stream request after another on the same connection is hyper's
    // too, and still a stream.
    let mut socket = connect(&app).await;
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /rooms/{code}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, "event: members").await;
    assert!(answers.contains("text/event-stream"), "{answers}");
}

#[tokio::test]
async fn after_a_request_hyper_answers_the_next_comes_back_to_roomcast() {
    let (app, code, mut socket) = room_and_connection().await;
    let requests = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
        post(&code, "after hyper", "")
    );
    socket.write_all(requests.as_bytes()).await.unwrap();
    let answers = read_to_close(&mut socket).await;
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    assert_eq!(
        answers.matches("HTTP/1.1 201 Created").count(),
        1,
        "{answers}"
    );
    // Refused by roomcast itself, with its headers, not by hyper.
    let refusal = answers.split("HTTP/1.1 400").nth(1).expect("a 400 last");
    assert_headers(
        &format!("HTTP/1.1 400{refusal}"),
        &[
            "x-content-type-options: nosniff",
            "referrer-policy: same-origin",
            "connection: close",
        ],
    );
    assert_eq!(texts(&app, &code).await, ["after hyper"]);
}

#[tokio::test]
async fn requests_that_cannot_be_read_are_refused_with_every_default_header() {
    let app = spawn_app().await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let huge_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(150));
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_string(), "400"),
        ("GET / HTTP/1.1\r\nbad header\r\n\r\n".to_string(), "400"),
        (
            "GET /rooms/ABCD/events HTTP/1.1\r\nbad header\r\n\r\n".to_string(),
            "400",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_string(),
            "400",
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
            "400",
        ),
        // No Host in HTTP/1.1, or two: on roomcast's own paths too.
        ("GET /healthz HTTP/1.1\r\n\r\n".to_string(), "400"),
        (
            "POST /rooms/ABCD/messages HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"
                .to_string(),
            "400",
        ),
        (
            "GET /rooms/ABCD/events HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(),
            "400",
        ),
        (huge_head, "431"),
        (many_headers, "431"),
        (long_target, "414"),
    ] {
        let mut socket = connect(&app).await;
        socket.write_all(request.as_bytes()).await.unwrap();
        let answer = read_until(&mut socket, "\r\n\r\n").await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:.60}: {answer}"
        );
        assert_headers(
            &answer,
            &[
                "x-content-type-options: nosniff",
                "referrer-policy: same-origin",
            ],
        );
    }
}

/// A server with a room, and a raw connection to it.
async fn room_and_connection() -> (TestApp, Joined, TcpStream) {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let token = app.token(&code, "al").await;
    let socket = connect(&app).await;
    (app, Joined { code, token }, socket)
}

/// A room, and the token of "al", who joined it. Reads as the code.
struct Joined {
    code: String,
    token: String,
}

impl std::ops::Deref for Joined {
    type Target = str;
    fn deref(&self) -> &str {
        &self.code
    }
}

impl std::fmt::Display for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code)
    }
}

/// A message POST as al's script would send it, with `extra` header lines.
fn post(room: &Joined, text: &str, extra: &str) -> String {
    let body = format!(r#"{{"text":"{text}"}}"#);
    format!(
        "POST /rooms/{}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        room.code,
        room.token,
        body.len()
    )
}

/// The texts of the room's messages, oldest first.
async fn texts(app: &TestApp, code: &str) -> Vec<String> {
    let history = app.history(code, "").await;
    history
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn messages_on_one_connection_are_answered_in_order_and_it_stays_open() {
    let (app, code, mut socket) = room_and_connection().await;
    // One alone, then two pipelined with a third request behind them that
    // is hyper's (the connection goes on through hyper, nothing lost).
    socket
        .write_all(post(&code, "one", "").as_bytes())
        .await
        .unwrap();
    let first = read_until(&mut socket, r#""text":"one""#).await;
    assert!(first.starts_with("HTTP/1.1 201 Created\r\n"), "{first}");
    assert_headers(
        &first,
        &[
            "content-type: application/json",
            "content-length: ",
            "date: ",
        ],
    );
    assert!(!first.to_ascii_lowercase().contains("connection: close"));
    let more = format!(
        "{}{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        post(&code, "two", ""),
        post(&code, "three", "")
    );
    socket.write_all(more.as_bytes()).await.unwrap();
    let answers = read_until(&mut socket, r#"{"status":"ok"}"#).await;
    assert_eq!(
        answers.matches("HTTP/1.1 201 Created").count(),
        2,
        "{answers}"
    );
    let (two, three) = (answers.find(r#""two""#), answers.find(r#""three""#));
    assert!(two.is_some() && two < three, "{answers}");
    assert_eq!(texts(&app, &code).await, ["one", "two", "three"]);
}

#[tokio::test]
async fn a_message_whose_body_comes_late_waits_for_it() {
    let (_app, code, mut socket) = room_and_connection().await;
    let request = post(&code, "late", "");
    let (head, body) = request.split_at(request.len() - 5);
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until(&mut socket, r#""text":"late""#).await;
    assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
}

#[tokio::test]
async fn a_message_asking_to_close_gets_its_answer_then_the_end() {
    let (app, code, mut socket) = room_and_connection().await;
    let request = post(&code, "bye", "Connection: close\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 201 Created\r\n"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(texts(&app, &code).await, ["bye"]);
}

#[tokio::test]
async fn messages_framed_otherwise_are_answered_by_hyper_just_the_same() {
    let (app, code, _) = room_and_connection().await;
    // curl sends Expect: 100-continue before a large body.
    let mut socket = connect(&app).await;
    let request = post(&code, "expect", "Expect: 100-continue\r\n");
    let (head, body) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
    socket.write_all(head.as_bytes()).await.unwrap();
    let go_on = read_until(&mut socket, "\r\n\r\n").await;
    assert!(go_on.starts_with("HTTP/1.1 100 Continue"), "{go_on}");
    socket.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until(&mut socket, r#""text":"expect""#).await;
    assert!(answer.contains("HTTP/1.1 201 Created"), "{answer}");
    // A chunked body: refused as before (411), with the reason.
    let mut socket = connect(&app).await;
    let body = r#"{"name":"al","text":"chunked"}"#;
    let request = format!(
        "POST /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until(&mut socket, "Content-Length").await;
    assert!(answer.starts_with("HTTP/1.1 411 "), "{answer}");
    // Over the body limit: refused, and nothing stored.
    let mut socket = connect(&app).await;
    let big = "x".repeat(20 * 1024);
    socket
        .write_all(post(&code, &big, "").as_bytes())
        .await
        .unwrap();
    let answer = read_until(&mut socket, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert_eq!(texts(&app, &code).await, ["expect"]);
}

#[tokio::test]
async fn bad_messages_on_a_kept_connection_get_clear_errors_and_change_nothing() {
    let (app, code, mut socket) = room_and_connection().await;
    let requests = [
        post(&code, "", ""),
        post(
            &Joined {
                code: "ZZZZ".into(),
                token: code.token.clone(),
            },
            "lost",
            "",
        ),
        format!(
            "POST /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n[1,2]",
            code.token
        ),
        post(&code, "fine", ""),
    ];
    socket
        .write_all(requests.concat().as_bytes())
        .await
        .unwrap();
    let answers = read_until(&mut socket, r#""text":"fine""#).await;
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|answer| answer.lines().next())
        .collect();
    assert_eq!(
        statuses,
        [
            "422 Unprocessable Entity",
            "401 Unauthorized",
            "400 Bad Request",
            "201 Created"
        ],
        "{answers}"
    );
    assert_eq!(texts(&app, &code).await, ["fine"]);
}

#[tokio::test]
async fn shutdown_closes_a_kept_connection_waiting_for_its_next_request() {
    let (mut app, code, mut socket) = room_and_connection().await;
    socket
        .write_all(post(&code, "hi", "").as_bytes())
        .await
        .unwrap();
    read_until(&mut socket, r#""text":"hi""#).await;
    app.shutdown().await; // panics if the server does not stop
    let rest = read_to_close(&mut socket).await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_request_left_unfinished() {
    // The first byte of a next request rides along with an answered one,
    // so the connection never waits with an empty buffer; after a message
    // (roomcast's own path) and after a request hyper answered.
    for answered in ["", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let (mut app, code, mut socket) = room_and_connection().await;
        let requests = format!("{answered}{}P", post(&code, "hi", ""));
        socket.write_all(requests.as_bytes()).await.unwrap();
        read_until(&mut socket, r#""text":"hi""#).await;
        app.shutdown().await; // panics if the server does not stop
        let rest = read_to_close(&mut socket).await;
        assert!(
            !rest.contains("HTTP/1.1"),
            "the unfinished one is not answered: {rest:?}"
        );
    }
}

#[tokio::test]
async fn half_sent_requests_get_408_within_the_request_timeout_on_every_path() {
    let app = spawn_with(|c| c.request_timeout = Duration::from_secs(1)).await;
    let code = app.create_room().await;
    let token = app.token(&code, "al").await;
    let message = format!(
        "POST /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"text\":"
    );
    let half_sent = [
        // A head that never ends.
        "GET /healthz HTTP/1.1\r\nHost: x\r\n".to_string(),
        // A message's body that never ends (roomcast's own path).
        message,
        // A form's body that never ends (hyper's path).
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=al".to_string(),
    ];
    let mut waiting = Vec::new();
    for i in 0..200 {
        let bytes = half_sent[i % half_sent.len()].clone();
        let mut socket = connect(&app).await;
        waiting.push(tokio::spawn(async move {
            socket.write_all(bytes.as_bytes()).await.unwrap();
            read_to_close(&mut socket).await
        }));
    }
    for (i, answer) in waiting.into_iter().enumerate() {
        let answer = answer.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{i}: {answer:?}"
        );
        assert!(answer.contains("did not arrive whole in time"), "{answer}");
    }
    // A connection that sent nothing is closed without a word.
    let mut idle = connect(&app).await;
    assert_eq!(read_to_close(&mut idle).await, "");
    // Nothing half-sent was kept.
    assert!(texts(&app, &code).await.is_empty());
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_connections() {
    let app = spawn_with(|c| c.max_connections_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect(&app).await);
    }
    // They are served (the cap counts open connections, not requests)…
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut held[0], "\"ok\"").await;
    // …and a sixth is told to come back, and closed.
    let mut sixth = connect(&app).await;
    let answer = read_to_close(&mut sixth).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert_headers(&answer, &["retry-after: 1"]);
    // One closes: there is room again.
    drop(held.pop());
    eventually("a connection is let in again", || async {
        let mut socket = connect(&app).await;
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut socket)
            .await
            .starts_with("HTTP/1.1 200 ")
    })
    .await;
}
