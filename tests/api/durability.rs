//! The SQLite store: a restart or a crash loses nothing that was accepted.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{eventually, metric, spawn_with, whole_history, Process, HANG};

fn on_file(path: &str) -> impl FnOnce(&mut roomcast::Config) + '_ {
    move |c| c.db = path.to_string()
}

/// A fresh directory (removed when dropped) and a database path in it.
fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    (dir, db)
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_restart_keeps_rooms_history_and_ids() {
    let (_dir, db) = temp_db();
    let db = db.as_str();

    let mut before = spawn_with(on_file(db)).await;
    let code = before.create_room().await;
    let empty = before.create_room().await;
    for i in 1..=3 {
        before.say(&code, "al", &format!("m{i}")).await;
    }
    let history_before = before.history(&code, "?since=0").await;
    before.restart().await;

    let after = &before;
    // Rooms are read from the store when first asked for, not at start.
    assert_eq!(metric(after, "roomcast_rooms").await, 0);
    assert_eq!(metric(after, "roomcast_rooms_stored").await, 2);
    assert_eq!(after.history(&code, "?since=0").await, history_before);
    assert_eq!(metric(after, "roomcast_rooms").await, 1);
    assert_eq!(metric(after, "roomcast_rooms_loaded_total").await, 1);
    assert!(
        after.history(&empty, "?since=0").await.is_empty(),
        "an empty room is back too"
    );
    let next = after.say(&code, "al", "m4").await;
    let last = history_before.last().unwrap()["id"].as_u64().unwrap();
    assert_eq!(next["id"], last + 1, "ids go on from where they were");
}

#[tokio::test]
async fn resuming_across_a_restart_gets_exactly_the_missed_events() {
    let (_dir, db) = temp_db();
    let db = db.as_str();

    let mut before = spawn_with(on_file(db)).await;
    let code = before.create_room().await;
    before.token(&code, "al").await;
    let mut stream = before.stream(&format!("/rooms/{code}/events")).await;
    before.say(&code, "al", "seen").await;
    let seen = stream.next_history().await;
    let last_seen = seen.id.clone().unwrap();
    before.say(&code, "al", "missed 1").await;
    before.restart().await;
    drop(stream);

    let after = &before;
    after.say(&code, "al", "missed 2").await;
    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", HeaderValue::from_str(&last_seen).unwrap());
    let mut resumed = after
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    let first = resumed.next_history().await;
    let second = resumed.next_history().await;
    assert_eq!(first.json()["text"], "missed 1");
    assert_eq!(second.json()["text"], "missed 2");
    after.say(&code, "al", "live").await;
    assert_eq!(
        resumed.next_history().await.json()["text"],
        "live",
        "nothing twice"
    );
}

#[tokio::test]
async fn sessions_survive_a_restart_and_never_mix_people_up() {
    let (_dir, db) = temp_db();
    let db = db.as_str();
    let mut before = spawn_with(on_file(db)).await;
    let mut alice = before.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut bob = before.browser();
    bob.enter("bob", &code, "join").await;
    let cookies = [("alice", alice.cookie.clone()), ("bob", bob.cookie.clone())];
    drop((alice, bob));
    before.restart().await;

    let after = &before;
    for (name, cookie) in cookies {
        let mut returning = after.browser();
        returning.cookie = cookie;
        let page = returning.get(&format!("/rooms/{code}")).await;
        assert_eq!(page.status(), StatusCode::OK, "{name} is not asked again");
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&format!(r#"data-me="{name}""#)),
            "{name}: {html}"
        );
    }
    let stranger = after.browser().get(&format!("/rooms/{code}")).await;
    assert_eq!(
        stranger.status(),
        StatusCode::SEE_OTHER,
        "a stranger is asked"
    );
    assert_eq!(
        stranger.headers()["location"],
        format!("/?code={code}").as_str()
    );
}

#[tokio::test]
async fn an_ended_room_is_deleted_from_the_store_but_its_end_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let db = path.to_str().unwrap();

    let mut app = spawn_with(|c| {
        c.db = db.to_string();
        c.room_ttl = Duration::from_millis(200);
        c.ended_ttl = Some(Duration::from_secs(3600));
    })
    .await;
    let code = app.create_room().await;
    app.say(&code, "al", "soon gone").await;
    let al = app.token(&code, "al").await;
    let kept = app.create_room().await;
    let mut follower = app.stream(&format!("/rooms/{kept}/events")).await;
    follower.next_members().await;
    let messages = format!("/rooms/{code}/messages");
    eventually("the room is gone", || async {
        let request = app.client.get(app.url(&messages)).bearer_auth(&al);
        let status = request.send().await.unwrap().status();
        // Gone with the room: its participants too (401), or not yet
        // swept from a session that still names it (410).
        status == StatusCode::GONE || status == StatusCode::UNAUTHORIZED
    })
    .await;
    app.shutdown().await;
    drop(follower);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [&code], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM rooms WHERE code = ?1"), 0);
    assert_eq!(count("SELECT count(*) FROM events WHERE room = ?1"), 0);
    assert_eq!(
        count("SELECT count(*) FROM participants WHERE room = ?1"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM ended_rooms WHERE code = ?1"), 1);
    let kept_rows: i64 = conn
        .query_row("SELECT count(*) FROM rooms WHERE code = ?1", [&kept], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept_rows, 1, "a room with a follower was kept");
    drop(conn);

    // Its end is kept too: after a restart the code still says so.
    app.restart().await;
    let page = app.client.get(app.url(&format!("/rooms/{code}")));
    assert_eq!(page.send().await.unwrap().status(), StatusCode::GONE);
}

#[tokio::test]
async fn eight_posters_store_every_message_once_in_id_order() {
    const POSTERS: usize = 8;
    const EACH: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let db = db.to_str().unwrap().to_string();
    let app = spawn_with(|c| {
        c.db = db;
        c.history = 5000;
    })
    .await;
    let code = app.create_room().await;
    let mut tokens = Vec::new();
    for p in 0..POSTERS {
        tokens.push(app.token(&code, &format!("p{p}")).await);
    }
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
        stream.next_members().await;
        subscribers.push(stream);
    }
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(POSTERS * EACH);
                while ids.len() < POSTERS * EACH {
                    let event = stream.next_history().await;
                    if event.event == "message" {
                        ids.push(event.id.unwrap().parse::<u64>().unwrap());
                    }
                }
                ids
            })
        })
        .collect();
    let posters: Vec<_> = (0..POSTERS)
        .map(|p| {
            let client = app.client.clone();
            let url = app.url(&format!("/rooms/{code}/messages"));
            let token = tokens[p].clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let body = serde_json::json!({"text": format!("{p}/{i}")});
                    let request = client.post(&url).bearer_auth(&token).json(&body);
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                    let stored: Value = response.json().await.unwrap();
                    acknowledged.push(stored["id"].as_u64().unwrap());
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    for poster in posters {
        let ids = poster.await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "one poster's ids go up"
        );
        acknowledged.extend(ids);
    }
    // The posters' joins came first, so their messages take the ids after.
    let first = POSTERS as u64 + 1;
    let expected: Vec<u64> = (first..first + (POSTERS * EACH) as u64).collect();
    assert_eq!(acknowledged.len(), POSTERS * EACH, "no id given twice");
    let mut stored = app.whole_history(&code).await;
    stored.retain(|e| e["kind"] == "message");
    assert_eq!(ids(&stored), expected, "all stored once, in id order");
    let texts: HashSet<&str> = stored.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), POSTERS * EACH);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected, "subscribers see id order");
    }
}

/// The binary on `db`, keeping all history, posts unlimited.
fn process_on(db: &str) -> Process {
    process_with(db, &[])
}

/// [`process_on`] with `flags` too.
fn process_with(db: &str, flags: &[&str]) -> Process {
    let unlimited = [
        "--post-burst",
        "1e9",
        "--post-rate",
        "1e9",
        "--max-connections-per-address",
        "100000",
    ];
    Process::start(&[&["--db", db, "--history", "100000"][..], &unlimited, flags].concat())
}

/// (id, text) of every post the server answered 201, in any order.
#[derive(Clone, Default)]
struct Acknowledged(Arc<Mutex<Vec<(u64, String)>>>);

impl Acknowledged {
    /// `posters` tasks post to `url` as fast as they are answered, noting
    /// every 201, until the server stops answering.
    fn post_flat_out(
        &self,
        client: &reqwest::Client,
        url: &str,
        token: &str,
        posters: usize,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..posters)
            .map(|p| {
                let (client, url, acknowledged) = (client.clone(), url.to_string(), self.clone());
                let token = token.to_string();
                tokio::spawn(async move {
                    for i in 0..100_000 {
                        let text = format!("{p}/{i}");
                        let body = serde_json::json!({"text": text});
                        let request = client.post(&url).bearer_auth(&token).json(&body);
                        let Ok(response) = request.send().await else {
                            return; // the server is gone
                        };
                        if response.status() != StatusCode::CREATED {
                            return;
                        }
                        let Ok(stored) = response.json::<Value>().await else {
                            return;
                        };
                        let id = stored["id"].as_u64().unwrap();
                        acknowledged.0.lock().unwrap().push((id, text));
                    }
                })
            })
            .collect()
    }

    /// Waits until `n` posts have been acknowledged.
    async fn wait_for(&self, n: usize) {
        eventually("posts are being acknowledged", || async {
            self.0.lock().unwrap().len() >= n
        })
        .await;
    }
}

#[tokio::test]
async fn kill_9_while_posting_loses_no_acknowledged_message() {
    let (_dir, db) = temp_db();
    let db = db.as_str();
    let client = crate::helpers::client().build().unwrap();

    let mut server = process_on(db);
    let code = server.create_room(&client).await;
    let token = server.join(&client, &code, "load").await;
    let url = format!("{}/rooms/{code}/messages", server.base);

    // 32 posters go as fast as they can, so the writer always has a queue;
    // the server is killed once 1000 posts have been acknowledged.
    let acknowledged = Acknowledged::default();
    let posters = acknowledged.post_flat_out(&client, &url, &token, 32);
    acknowledged.wait_for(1000).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for poster in posters {
        poster.await.unwrap();
    }

    let server = process_on(db);
    let mut stored = whole_history(&client, &server.base, &code, &token).await;
    stored.retain(|e| e["kind"] == "message");
    let stored_ids = ids(&stored);
    let unique: HashSet<u64> = stored_ids.iter().copied().collect();
    assert_eq!(unique.len(), stored_ids.len(), "no duplicate ids");
    assert!(stored_ids.windows(2).all(|w| w[0] < w[1]), "ids go up");
    let by_id: std::collections::HashMap<u64, &str> = stored
        .iter()
        .map(|e| (e["id"].as_u64().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    let acknowledged = acknowledged.0.lock().unwrap();
    assert!(acknowledged.len() >= 1000);
    for (id, text) in acknowledged.iter() {
        assert_eq!(
            by_id.get(id),
            Some(&text.as_str()),
            "acknowledged message {id} is stored"
        );
    }
}

#[test]
fn a_bad_database_file_is_a_clear_error_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not an SQLite database, just some text\n".repeat(200),
    )
    .unwrap();
    let missing_dir = dir.path().join("no/such/dir/chat.db");
    for (path, says) in [
        (garbage.to_str().unwrap(), "not a database"),
        (missing_dir.to_str().unwrap(), "No such file or directory"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["--bind", "127.0.0.1:0", "--db", path])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{path}: started anyway");
        assert!(
            stderr.contains("cannot open the database"),
            "{path}: {stderr}"
        );
        assert!(stderr.contains(says), "{path}: {stderr}");
        assert!(!stderr.contains("panicked"), "{path}: {stderr}");
    }
    let bytes = std::fs::read(&garbage).unwrap();
    assert!(
        bytes.starts_with(b"this is not"),
        "the bad file was left alone"
    );
}

#[tokio::test]
async fn a_database_in_use_by_another_roomcast_is_refused() {
    let (_dir, db) = temp_db();
    let db = db.as_str();
    let _first = process_on(db);
    let output = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["--bind", "127.0.0.1:0", "--db", db])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("another roomcast process is using it"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_with_open_streams_and_half_sent_requests_exits_soon_and_keeps_every_201() {
    use tokio::io::AsyncWriteExt;

    const STREAMS: usize = 2000;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (_dir, db) = temp_db();
    let db = db.as_str();
    let client = crate::helpers::client().build().unwrap();
    // Half-sent requests would hold shutdown up for the request timeout
    // (a minute here): the shutdown timeout (a second) ends the wait.
    let timeouts = ["--request-timeout", "60", "--shutdown-timeout", "1"];
    let mut server = process_with(db, &timeouts);
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let code = server.create_room(&client).await;
    let token = server.join(&client, &code, "load").await;
    let mut half_sent = Vec::new();
    for _ in 0..200 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let form = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=al";
        socket.write_all(form.as_bytes()).await.unwrap();
        half_sent.push(socket);
    }

    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /rooms/{code}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        streams.push(stream);
    }
    let url = format!("{}/rooms/{code}/messages", server.base);
    let acknowledged = Acknowledged::default();
    let posters = acknowledged.post_flat_out(&client, &url, &token, 8);
    acknowledged.wait_for(200).await;

    let signalled = std::time::Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    });
    let (status, _server) = tokio::time::timeout(HANG, status)
        .await
        .expect("the server did not exit")
        .unwrap();
    // Printed, not asserted: timings belong to the benchmark.
    eprintln!(
        "exited {:?} after SIGTERM with {STREAMS} streams open",
        signalled.elapsed()
    );
    assert!(status.success(), "exit status {status:?}");
    for poster in posters {
        poster.await.unwrap();
    }
    drop((streams, half_sent));

    let server = process_on(db);
    let stored = whole_history(&client, &server.base, &code, &token).await;
    let stored: HashSet<u64> = ids(&stored).into_iter().collect();
    for (id, _) in acknowledged.0.lock().unwrap().iter() {
        assert!(stored.contains(id), "acknowledged message {id} was lost");
    }
}

#[tokio::test]
async fn a_room_let_go_of_memory_answers_as_before_to_everyone() {
    let app = spawn_with(|c| c.unload_after = Duration::from_millis(50)).await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let said = app.say(&code, "bob", "hello").await;
    eventually("the room leaves memory", || async {
        metric(&app, "roomcast_rooms").await == 0
    })
    .await;
    // A stranger taking alice's name is refused as before.
    let refused = app
        .join_as(&code, serde_json::json!({ "name": "ALICE" }))
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    eventually("the room leaves memory again", || async {
        metric(&app, "roomcast_rooms").await == 0
    })
    .await;
    // Alice's page comes back with her name and the history.
    let page = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-me="alice""#), "{html}");
    assert!(html.contains("hello"), "{html}");
    let next = app.say(&code, "bob", "again").await;
    assert_eq!(next["id"], said["id"].as_u64().unwrap() + 1);
}
