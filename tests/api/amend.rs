//! Changing messages: `PATCH` and `DELETE /rooms/CODE/messages/ID` by the
//! sender only, `POST …/ID/reactions` by any member; each is history
//! (`kind` edit, delete, reaction) that streams and resumes see in order,
//! and a message reads as it is now. A delete leaves nothing of the words
//! or the name: not in history, search, the store or Redis.

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Sse, TestApp};
use crate::redis::Redis;

async fn stream(app: &TestApp, code: &str, token: &str, since: u64) -> Sse {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    app.stream_with(&format!("/rooms/{code}/events?since={since}"), headers)
        .await
}

/// Sends `method` to `/rooms/CODE/messages/PATH` as `token` (none: as
/// nobody), with `body` as JSON if any.
async fn ask(
    app: &TestApp,
    method: &str,
    code: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method, app.url(&format!("/rooms/{code}/messages/{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn edit(app: &TestApp, code: &str, id: u64, token: &str, text: &str) -> (StatusCode, Value) {
    ask(
        app,
        "PATCH",
        code,
        &id.to_string(),
        Some(token),
        Some(json!({ "text": text })),
    )
    .await
}

async fn delete(app: &TestApp, code: &str, id: u64, token: &str) -> StatusCode {
    ask(app, "DELETE", code, &id.to_string(), Some(token), None)
        .await
        .0
}

async fn react(
    app: &TestApp,
    code: &str,
    id: u64,
    token: &str,
    emoji: &str,
) -> (StatusCode, Value) {
    let path = format!("{id}/reactions");
    ask(
        app,
        "POST",
        code,
        &path,
        Some(token),
        Some(json!({ "emoji": emoji })),
    )
    .await
}

fn id(message: &Value) -> u64 {
    message["id"].as_u64().unwrap()
}

/// The next history event on `stream` of one of `kinds`.
async fn next_of(stream: &mut Sse, kinds: &[&str]) -> Value {
    loop {
        let event = stream.next().await;
        if kinds.contains(&event.event.as_str()) {
            assert!(event.id.is_some(), "history has ids");
            return event.json();
        }
    }
}

fn find(history: &[Value], id: u64) -> Option<&Value> {
    history.iter().find(|e| e["id"] == id)
}

/// alice speaks and changes her words on `a`; bob follows and tries on `b`.
async fn check_edit_and_delete(a: &TestApp, b: &TestApp) -> (String, u64) {
    let code = a.create_room().await;
    let alice = a.token(&code, "alice").await;
    let bob = b.token(&code, "bob").await;
    let watcher = a.join(&code, "logbot", true).await;
    let first = a.say(&code, "alice", "teh first").await;
    let secret = a.say(&code, "alice", "my password is swordfish").await;
    let mut bobs = stream(b, &code, &bob, id(&secret)).await;

    // The sender edits: 200 with the message as it reads now.
    let (status, now) = edit(a, &code, id(&first), &alice, "the first").await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(
        (now["id"].as_u64(), &now["text"], &now["name"]),
        (Some(id(&first)), &json!("the first"), &json!("alice"))
    );
    assert!(now["edited"].as_str().unwrap().ends_with('Z'));
    assert_eq!(now["ts"], first["ts"], "still sent when it was");
    let change = next_of(&mut bobs, &["edit"]).await;
    assert_eq!(
        (&change["target"], &change["text"], &change["name"]),
        (&json!(id(&first)), &json!("the first"), &json!("alice"))
    );

    // Nobody else may, nor with bad words, nor a message that is none.
    assert_eq!(
        edit(b, &code, id(&first), &bob, "mine now").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(b, &code, id(&first), &bob).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        edit(a, &code, id(&first), &watcher, "x").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        edit(a, &code, id(&first), &alice, "  ").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let long = "x".repeat(2001);
    assert_eq!(
        edit(a, &code, id(&first), &alice, &long).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    for no_id in [0, 9999, u64::MAX] {
        assert_eq!(
            edit(a, &code, no_id, &alice, "x").await.0,
            StatusCode::NOT_FOUND,
            "{no_id}"
        );
        assert_eq!(delete(a, &code, no_id, &alice).await, StatusCode::NOT_FOUND);
    }
    // Past what an id can be: no such path.
    let (status, _) = ask(
        a,
        "DELETE",
        &code,
        "18446744073709551616",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        edit(a, &code, 1, &alice, "x").await.0,
        StatusCode::NOT_FOUND,
        "a join is no message"
    );
    let nobody = ask(
        a,
        "PATCH",
        &code,
        &id(&first).to_string(),
        None,
        Some(json!({"text": "x"})),
    )
    .await;
    assert_eq!(nobody.0, StatusCode::UNAUTHORIZED);
    let stranger = a.join(&a.create_room().await, "mallory", false).await;
    assert_eq!(
        edit(a, &code, id(&first), &stranger, "x").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete(a, &code, id(&first), &stranger).await,
        StatusCode::UNAUTHORIZED
    );
    let history = b.whole_history(&code).await;
    assert_eq!(
        find(&history, id(&first)).unwrap()["text"],
        "the first",
        "nothing refused changed it"
    );

    // A delete: 204, and nothing of it is left to read.
    let (status, _) = edit(a, &code, id(&secret), &alice, "my password is swordfish2").await;
    assert_eq!(status, StatusCode::OK);
    // Her own reaction to it names her: it goes with it too.
    assert_eq!(
        react(a, &code, id(&secret), &alice, "👀").await.0,
        StatusCode::OK
    );
    assert_eq!(
        react(b, &code, id(&secret), &bob, "👍").await.0,
        StatusCode::OK
    );
    assert_eq!(
        delete(a, &code, id(&secret), &alice).await,
        StatusCode::NO_CONTENT
    );
    let gone = next_of(&mut bobs, &["delete"]).await;
    assert_eq!(gone["target"], id(&secret));
    assert!(
        gone.get("name").is_none() && gone.get("text").is_none(),
        "{gone}"
    );
    assert_eq!(
        delete(a, &code, id(&secret), &alice).await,
        StatusCode::NOT_FOUND,
        "once"
    );
    assert_eq!(
        edit(a, &code, id(&secret), &alice, "back").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        react(b, &code, id(&secret), &bob, "👍").await.0,
        StatusCode::NOT_FOUND
    );
    let history = b.whole_history(&code).await;
    let placeholder = find(&history, id(&secret)).unwrap();
    assert_eq!(placeholder["deleted"], true);
    assert_eq!(placeholder["kind"], "message");
    assert!(placeholder.get("name").is_none() && placeholder.get("text").is_none());
    let all = serde_json::to_string(&history).unwrap();
    assert!(!all.contains("swordfish"), "no words of it: {all}");
    let changes: Vec<&Value> = (history.iter())
        .filter(|e| e["target"] == id(&secret))
        .collect();
    assert_eq!(
        changes.len(),
        1,
        "only the delete is left of it: {changes:?}"
    );
    assert_eq!(changes[0]["kind"], "delete");
    let search = format!("/rooms/{code}/messages?q=swordfish");
    let found: Value = b
        .client
        .get(b.url(&search))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found, json!([]));

    // A resume from the start replays every change in order, as it reads now.
    let mut again = stream(b, &code, &bob, 0).await;
    let mut seen = Vec::new();
    while seen.len() < history.len() {
        let event = again.next().await;
        if event.id.is_some() {
            seen.push(event.json());
        }
    }
    assert_eq!(seen, history);
    let kinds: Vec<&str> = history.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "edit").count(),
        1,
        "the deleted one's edit went with it: {kinds:?}"
    );
    assert_eq!(*kinds.last().unwrap(), "delete");
    (code, id(&secret))
}

#[tokio::test]
async fn the_sender_edits_and_deletes_and_nobody_else_can() {
    let app = crate::helpers::spawn_app().await;
    check_edit_and_delete(&app, &app).await;
}

#[tokio::test]
async fn a_delete_leaves_nothing_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let path = db.clone();
    let mut app = crate::helpers::spawn_with(move |c| c.db = path).await;
    let (code, _) = check_edit_and_delete(&app, &app).await;
    // A long one too, whose text overflowed its page to others.
    let long = format!("zebrafinch {}", "lorem ipsum dolor ".repeat(100));
    let said = app.say(&code, "alice", &long).await;
    let alice = app.token(&code, "alice").await;
    assert_eq!(
        delete(&app, &code, id(&said), &alice).await,
        StatusCode::NO_CONTENT
    );
    // Not in the file's bytes either, while the server runs: not in the
    // database's free space, the search index or the write-ahead log.
    for file in [db.clone(), format!("{db}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for word in ["swordfish", "password", "zebrafinch", "lorem ipsum"] {
            let found = memchr::memmem::find(&bytes, word.as_bytes());
            assert!(found.is_none(), "{word} in {file} at {found:?}");
        }
    }
    let before = app.whole_history(&code).await;
    app.restart().await;
    assert_eq!(
        app.whole_history(&code).await,
        before,
        "as it read, after a restart"
    );
    app.shutdown().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM events WHERE text LIKE '%swordfish%'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM message_words WHERE message_words MATCH 'swordfish'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM message_words WHERE message_words MATCH 'password'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE deleted = 1 AND (name <> '' OR text IS NOT NULL)"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM events WHERE deleted = 1"), 2);
}

#[tokio::test]
async fn edits_and_deletes_cross_nodes_and_leave_nothing_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let node = || {
        let url = redis.url();
        crate::helpers::spawn_with(move |c| c.redis = Some(url))
    };
    let (a, b) = (node().await, node().await);
    let (code, _) = check_edit_and_delete(&a, &b).await;
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("roomcast:{{{code}}}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let kind: String = ::redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // All of it, whatever it is.
        let mut read = match kind.as_str() {
            "stream" => ::redis::cmd("XRANGE"),
            "hash" => ::redis::cmd("HGETALL"),
            "zset" => ::redis::cmd("ZRANGE"),
            "list" => ::redis::cmd("LRANGE"),
            _ => ::redis::cmd("GET"),
        };
        read.arg(&key);
        match kind.as_str() {
            "stream" => read.arg("-").arg("+"),
            "zset" | "list" => read.arg(0).arg(-1),
            _ => &mut read,
        };
        let dump: ::redis::Value = read.query_async(&mut conn).await.unwrap();
        assert!(
            !format!("{dump:?}").contains("swordfish"),
            "{key}: {dump:?}"
        );
    }
}

/// bob and carol react to alice's message on `a` and `b`.
async fn check_reactions(a: &TestApp, b: &TestApp) {
    let code = a.create_room().await;
    let alice = a.token(&code, "alice").await;
    let bob = b.token(&code, "bob").await;
    let carol = a.token(&code, "carol").await;
    let watcher = a.join(&code, "logbot", true).await;
    let hi = a.say(&code, "alice", "hi").await;
    let mut alices = stream(a, &code, &alice, id(&hi)).await;

    let (status, now) = react(b, &code, id(&hi), &bob, "👍").await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(
        now["reactions"],
        json!([{ "emoji": "👍", "count": 1, "names": ["bob"] }])
    );
    let change = next_of(&mut alices, &["reaction"]).await;
    assert_eq!(
        (
            &change["target"],
            &change["emoji"],
            &change["name"],
            &change["on"]
        ),
        (&json!(id(&hi)), &json!("👍"), &json!("bob"), &json!(true))
    );
    react(a, &code, id(&hi), &carol, "👍").await;
    let (_, now) = react(a, &code, id(&hi), &carol, "❤️").await;
    assert_eq!(
        now["reactions"],
        json!([
            { "emoji": "👍", "count": 2, "names": ["bob", "carol"] },
            { "emoji": "❤️", "count": 1, "names": ["carol"] },
        ])
    );
    let history = b.whole_history(&code).await;
    assert_eq!(
        find(&history, id(&hi)).unwrap()["reactions"],
        now["reactions"]
    );

    // Twice is none; only the short set; a watcher may not; nor anyone outside.
    let (_, now) = react(b, &code, id(&hi), &bob, "👍").await;
    let change = loop {
        let change = next_of(&mut alices, &["reaction"]).await;
        if change["name"] == "bob" {
            break change;
        }
    };
    assert_eq!(change["on"], false);
    react(a, &code, id(&hi), &carol, "👍").await;
    let (_, now_) = react(a, &code, id(&hi), &carol, "❤️").await;
    assert_eq!(now["reactions"][0]["count"], 1);
    assert!(now_.get("reactions").is_none(), "{now_}");
    assert!(find(&b.whole_history(&code).await, id(&hi))
        .unwrap()
        .get("reactions")
        .is_none());
    assert_eq!(
        react(b, &code, id(&hi), &bob, "🦀").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        react(b, &code, id(&hi), &bob, "").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        react(a, &code, id(&hi), &watcher, "👍").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        react(a, &code, 9999, &bob, "👍").await.0,
        StatusCode::NOT_FOUND
    );
    let nobody = ask(
        a,
        "POST",
        &code,
        &format!("{}/reactions", id(&hi)),
        None,
        Some(json!({"emoji": "👍"})),
    )
    .await;
    assert_eq!(nobody.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reactions_toggle_and_count_by_member() {
    let app = crate::helpers::spawn_app().await;
    check_reactions(&app, &app).await;
}

#[tokio::test]
async fn reactions_cross_nodes_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let node = || {
        let url = redis.url();
        crate::helpers::spawn_with(move |c| c.redis = Some(url))
    };
    let (a, b) = (node().await, node().await);
    check_reactions(&a, &b).await;
}

#[tokio::test]
async fn an_old_message_out_of_memory_is_edited_from_the_store() {
    // Memory holds 4 events a room; the message is long out of it.
    let app = crate::helpers::spawn_with(|c| c.room_memory_events = 4).await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    let old = app.say(&code, "alice", "old words").await;
    for n in 0..10 {
        app.say(&code, "alice", &format!("filler {n}")).await;
    }
    let (status, now) = edit(&app, &code, id(&old), &alice, "new words").await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(now["text"], "new words");
    let (_, now) = react(&app, &code, id(&old), &alice, "🎉").await;
    assert_eq!(
        (&now["text"], &now["reactions"][0]["count"]),
        (&json!("new words"), &json!(1))
    );
    let history = app.whole_history(&code).await;
    assert_eq!(find(&history, id(&old)).unwrap()["text"], "new words");
    assert_eq!(
        delete(&app, &code, id(&old), &alice).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        find(&app.whole_history(&code).await, id(&old)).unwrap()["deleted"],
        true
    );
}

#[tokio::test]
async fn changes_from_another_site_are_refused_and_change_nothing() {
    let app = crate::helpers::spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let sent = alice
        .submit(&format!("/rooms/{code}/messages"), &[("text", "mine")])
        .await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let cookie = alice.cookie.clone().unwrap();
    let mine = app.whole_history(&code).await.last().unwrap().clone();
    assert_eq!(mine["text"], "mine");
    // Her own message, with her own cookie, from a page of another site:
    // each would be allowed from this one.
    for (method, path) in [
        ("POST", format!("{}/reactions", id(&mine))),
        ("POST", format!("{}/edit", id(&mine))),
        ("POST", format!("{}/delete", id(&mine))),
        ("PATCH", id(&mine).to_string()),
        ("DELETE", id(&mine).to_string()),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&format!("/rooms/{code}/messages/{path}")))
            .header("cookie", &cookie)
            .header("origin", "http://evil.example")
            .form(&[("emoji", "👍"), ("text", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let history = app.whole_history(&code).await;
    assert_eq!(find(&history, id(&mine)), Some(&mine), "unchanged");
    assert!(history.iter().all(|e| e["id"].as_u64() <= Some(id(&mine))));
}

#[tokio::test]
async fn without_script_the_forms_edit_delete_and_react() {
    let app = crate::helpers::spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut bob = app.browser();
    assert_eq!(bob.enter("bob", &code, "join").await, code);
    let messages = format!("/rooms/{code}/messages");
    alice.submit(&messages, &[("text", "helo")]).await;
    let said = app.whole_history(&code).await.last().unwrap().clone();
    let at = format!("{messages}/{}", id(&said));

    // Her page offers her the edit and delete forms; bob's does not.
    let hers = alice.room_page(&code).await;
    assert!(hers.contains(&format!(r#"action="{at}/edit""#)), "{hers}");
    let his = bob.room_page(&code).await;
    assert!(!his.contains(&format!("{at}/edit")) && !his.contains(&format!("{at}/delete")));
    assert!(his.contains(&format!(r#"action="{at}/reactions""#)));

    // bob's forged form is refused, with the room saying why.
    let forged = bob
        .submit(&format!("{at}/edit"), &[("text", "bob was here")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let page = forged.text().await.unwrap();
    assert!(
        page.contains(r#"id="send-error">"#) && page.contains("helo"),
        "{page}"
    );
    let empty = alice.submit(&format!("{at}/edit"), &[("text", "  ")]).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let edited = alice
        .submit(&format!("{at}/edit"), &[("text", "hello")])
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    let back = format!("/rooms/{code}#e{}", id(&said));
    assert_eq!(edited.headers()["location"], back.as_str());
    let reacted = bob
        .submit(&format!("{at}/reactions"), &[("emoji", "🎉")])
        .await;
    assert_eq!(reacted.status(), StatusCode::SEE_OTHER);
    let page = bob.room_page(&code).await;
    assert!(page.contains("hello") && page.contains("(edited)"));
    assert!(
        page.contains(r#"aria-pressed="true" title="bob""#),
        "{page}"
    );

    let deleted = alice.submit(&format!("{at}/delete"), &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let page = bob.room_page(&code).await;
    assert!(page.contains("message deleted") && !page.contains("hello"));
    let history = app.whole_history(&code).await;
    assert_eq!(find(&history, id(&said)).unwrap()["deleted"], true);
}

#[tokio::test]
async fn a_page_of_reactions_hides_no_history() {
    let app = crate::helpers::spawn_with(|c| c.post_burst = 1000.0).await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let first = app.say(&code, "bob", "the first words").await;
    let bob = app.token(&code, "bob").await;
    // More changes than a page holds: the newest page shows no line.
    for _ in 0..60 {
        assert_eq!(
            react(&app, &code, id(&first), &bob, "👍").await.0,
            StatusCode::OK
        );
    }
    let page = alice.room_page(&code).await;
    assert!(!page.contains("the first words"));
    // Its link to older events starts before all it read, shown or not.
    let end = page.find("\" id=\"older-link\"").expect("an older link");
    let link = &page[page[..end].rfind("href=\"").unwrap() + 6..end];
    let link = link.replace("&#x3D;", "=");
    assert!(
        link.starts_with(&format!("/rooms/{code}?before=")),
        "{link}"
    );
    let older = alice.get(&link).await.text().await.unwrap();
    assert!(older.contains("the first words"), "{older}");
}

/// A post sent again with its key after its message was deleted gets the
/// message as it reads now, deleted, and nothing is stored again.
async fn check_repeat_after_delete(a: &TestApp, b: &TestApp) {
    let code = a.create_room().await;
    let alice = a.token(&code, "alice").await;
    let post = |app: &TestApp, text: &'static str| {
        let request = app
            .client
            .post(app.url(&format!("/rooms/{code}/messages")))
            .bearer_auth(&alice)
            .header("idempotency-key", "msg-1")
            .json(&json!({ "text": text }));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, said) = post(a, "oops, wrong room").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        delete(a, &code, id(&said), &alice).await,
        StatusCode::NO_CONTENT
    );
    let before = b.whole_history(&code).await;
    for app in [a, b] {
        for text in ["oops, wrong room", "other words"] {
            let (status, again) = post(app, text).await;
            assert_eq!(status, StatusCode::CREATED, "{again}");
            assert_eq!(again["id"], said["id"]);
            assert_eq!(again["deleted"], true, "{again}");
            assert!(again.get("text").is_none() && again.get("name").is_none());
        }
    }
    assert_eq!(b.whole_history(&code).await, before, "nothing stored again");
}

#[tokio::test]
async fn a_deleted_post_sent_again_is_not_stored_again() {
    let app = crate::helpers::spawn_app().await;
    check_repeat_after_delete(&app, &app).await;
    let Some(redis) = Redis::start() else { return };
    let node = || {
        let url = redis.url();
        crate::helpers::spawn_with(move |c| c.redis = Some(url))
    };
    let (a, b) = (node().await, node().await);
    check_repeat_after_delete(&a, &b).await;
}

/// Every change asked for spends from the post allowance, made or
/// refused, on one node as with Redis: probing costs as posting does.
async fn check_changes_are_charged(app: &TestApp) {
    let code = app.create_room().await;
    let bob = app.token(&code, "bob").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(delete(app, &code, 9999, &bob).await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // A plain form past it: the room again, saying when to try.
    let mut carol = app.browser();
    assert_eq!(carol.enter("carol", &code, "join").await, code);
    let form = format!("/rooms/{code}/messages/9999/delete");
    for _ in 0..3 {
        assert_eq!(
            carol.submit(&form, &[]).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    let refused = carol.submit(&form, &[]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains(r#"id="send-error">"#));
}

#[tokio::test]
async fn changes_refused_or_not_spend_the_post_allowance() {
    let tight = |c: &mut roomcast::config::Config| {
        c.post_burst = 3.0;
        c.post_rate = 0.01;
    };
    check_changes_are_charged(&crate::helpers::spawn_with(tight).await).await;
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = crate::helpers::spawn_with(move |c| {
        tight(c);
        c.redis = Some(url);
    })
    .await;
    check_changes_are_charged(&app).await;
}
