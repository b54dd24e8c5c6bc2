//! What `--history` keeps (messages, and notices beside them), and history
//! held in memory within its bounds while reads and resumes stay exact:
//! what memory let go of is read from the store.

use serde_json::Value;

use crate::helpers::{spawn_with, TestApp};
use crate::redis::Redis;

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// `n` people join the room and leave again, one after another.
async fn come_and_go(app: &TestApp, code: &str, n: usize) {
    for i in 0..n {
        let joined = app
            .join_as(code, serde_json::json!({"name": format!("p{i}")}))
            .await;
        assert_eq!(joined.status(), reqwest::StatusCode::CREATED);
        let token = joined.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let left = app
            .client
            .post(app.url(&format!("/rooms/{code}/leave")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(left.status(), reqwest::StatusCode::NO_CONTENT);
    }
}

/// Five messages, then 500 comings and goings, with `--history 5`: every
/// message is still there, and the notices kept beside them are the
/// newest five.
async fn check_notices_never_push_a_message_out(app: &TestApp) {
    let code = app.create_room().await;
    for i in 1..=5 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    come_and_go(app, &code, 250).await;
    let history = app.whole_history(&code).await;
    let texts: Vec<&str> = (history.iter())
        .filter(|e| e["kind"] == "message")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4", "m5"], "{history:?}");
    let notices = kinds(&history).iter().filter(|k| **k != "message").count();
    assert_eq!(
        notices, 5,
        "the newest five notices beside them: {history:?}"
    );
    let last_id = ids(&history).last().copied().unwrap();
    assert!(last_id > 30, "the crowd was announced ({last_id} ids)");
}

#[tokio::test]
async fn notices_never_push_a_message_out_of_history() {
    let app = spawn_with(|c| c.history = 5).await;
    check_notices_never_push_a_message_out(&app).await;
}

#[tokio::test]
async fn notices_never_push_a_message_out_of_history_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(move |c| {
        c.redis = Some(url);
        c.history = 5;
    })
    .await;
    check_notices_never_push_a_message_out(&app).await;
    // Messages past --history go, with the notices before them.
    let code = app.create_room().await;
    for i in 1..=8 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    let history = app.whole_history(&code).await;
    assert_eq!(ids(&history), [5, 6, 7, 8, 9], "{history:?}");
    // A node with a smaller --history trims the room at its next event.
    let url = redis.url();
    let smaller = spawn_with(move |c| {
        c.redis = Some(url);
        c.history = 2;
    })
    .await;
    smaller.say(&code, "al", "m9").await;
    let history = smaller.whole_history(&code).await;
    assert_eq!(ids(&history), [9, 10], "{history:?}");
}

/// Memory holds four events of the room; everything older comes from the
/// store, in order, nothing missing, nothing twice.
#[tokio::test]
async fn reads_older_than_memory_holds_come_from_the_store_exactly() {
    let app = spawn_with(|c| c.room_memory_events = 4).await;
    let code = app.create_room().await;
    for i in 1..=20 {
        app.say(&code, "al", &format!("m{i}")).await; // ids 2 to 21
    }
    let all: Vec<u64> = (1..=21).collect();
    assert_eq!(ids(&app.history(&code, "?since=0").await), all);
    assert_eq!(
        ids(&app.history(&code, "?since=2&limit=3").await),
        [3, 4, 5]
    );
    assert_eq!(
        ids(&app.history(&code, "?limit=6").await),
        [16, 17, 18, 19, 20, 21]
    );
    assert_eq!(ids(&app.history(&code, "?since=18").await), [19, 20, 21]);

    let mut stream = app.stream(&format!("/rooms/{code}/events?since=0")).await;
    for id in 1..=21 {
        assert_eq!(stream.next_history().await.id, Some(id.to_string()));
    }
    app.say(&code, "al", "live").await;
    let live = stream.next_history().await;
    assert_eq!(
        (live.id.as_deref(), live.json()["text"].as_str()),
        (Some("22"), Some("live"))
    );
    let reads = crate::helpers::metric(&app, "roomcast_history_store_reads_total").await;
    assert!(reads >= 3, "{reads} reads went to the store");
}

/// `before=ID` pages back: the newest N below ID, oldest first, from
/// memory or (older than it holds) from the store; paging on from the
/// oldest given walks the whole history once, in order.
async fn check_paging_back(app: &TestApp) {
    let code = app.create_room().await;
    for i in 1..=20 {
        app.say(&code, "al", &format!("m{i}")).await; // ids 2 to 21
    }
    assert_eq!(
        ids(&app.history(&code, "?before=21&limit=3").await),
        [18, 19, 20]
    );
    assert_eq!(
        ids(&app.history(&code, "?before=4&limit=10").await),
        [1, 2, 3]
    );
    assert!(app.history(&code, "?before=1").await.is_empty());
    assert_eq!(
        ids(&app.history(&code, "?before=99&limit=2").await),
        [20, 21],
        "past the newest: the newest"
    );
    let mut walked = Vec::new();
    let mut before = 22;
    loop {
        let page = ids(&app
            .history(&code, &format!("?before={before}&limit=4"))
            .await);
        let Some(&oldest) = page.first() else { break };
        walked.splice(0..0, page);
        before = oldest;
    }
    assert_eq!(walked, (1..=21).collect::<Vec<u64>>());
    let both = app
        .client
        .get(app.url(&format!("/rooms/{code}/messages?since=2&before=9")))
        .bearer_auth(app.reader(&code).await)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn history_pages_back_with_before_from_memory_and_the_store() {
    let app = spawn_with(|c| c.room_memory_events = 4).await;
    check_paging_back(&app).await;
}

#[tokio::test]
async fn history_pages_back_with_before_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(|c| c.redis = Some(url)).await;
    check_paging_back(&app).await;
}

/// Twenty rooms of long messages in a memory budget that holds a few of
/// them: memory stays within it, and every room's whole history still
/// reads back exactly, from memory or from the store.
#[tokio::test]
async fn all_rooms_history_in_memory_stays_within_the_total() {
    let budget: u64 = 64 * 1024;
    let app = spawn_with(|c| c.total_memory_bytes = budget as usize).await;
    let long = "x".repeat(1000);
    let mut rooms = Vec::new();
    for _ in 0..20 {
        let code = app.create_room().await;
        for i in 1..=12 {
            app.say(&code, "al", &format!("{i} {long}")).await;
        }
        rooms.push(code);
    }
    let held = crate::helpers::metric(&app, "roomcast_history_memory_bytes").await;
    assert!(held <= budget, "{held} bytes held");
    assert!(held > budget / 2, "the budget is used: {held} bytes");
    for code in &rooms {
        let history = app.whole_history(code).await;
        assert_eq!(ids(&history), (1..=13).collect::<Vec<u64>>(), "{code}");
        assert!(history[12]["text"].as_str().unwrap().starts_with("12 "));
    }
}

/// After a restart memory holds only what fits; a resume from the start
/// is still exact.
#[tokio::test]
async fn a_restart_within_a_small_memory_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(|c| {
        c.db = db;
        c.room_memory_events = 3;
        c.total_memory_bytes = 4096;
    })
    .await;
    let mut rooms = Vec::new();
    for _ in 0..5 {
        let code = app.create_room().await;
        for i in 1..=9 {
            app.say(&code, "al", &format!("m{i}")).await;
        }
        rooms.push(code);
    }
    app.restart().await;
    for code in &rooms {
        let mut stream = app.stream(&format!("/rooms/{code}/events?since=0")).await;
        for id in 1..=10 {
            assert_eq!(
                stream.next_history().await.id,
                Some(id.to_string()),
                "{code}"
            );
        }
    }
    let held = crate::helpers::metric(&app, "roomcast_history_memory_bytes").await;
    assert!(held <= 4096, "{held} bytes held");
}

/// The texts of the messages a room page shows, in order.
fn page_texts(html: &str) -> Vec<String> {
    html.split(r#"<p class="text">"#)
        .skip(1)
        .map(|rest| rest.split("</p>").next().unwrap().to_string())
        .collect()
}

/// The `href` of the link with this id, if the page has it.
fn link(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!(r#"id="{id}""#))?;
    let start = html[..at].rfind("href=\"")? + "href=\"".len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#x3D;", "=")
            .replace("&amp;", "&"),
    )
}

/// Without script: the room page links to the page of older events, and
/// that one to the one before, back to the start, each message once.
async fn check_older_pages_and_search_without_script(app: &TestApp) {
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    for i in 1..=120 {
        let fruit = if i % 40 == 0 { "apple" } else { "pear" };
        app.say(&code, "al", &format!("{fruit} {i}")).await;
    }
    let mut html = alice.room_page(&code).await;
    assert!(html.contains(r#"data-view="live""#));
    let mut seen = page_texts(&html);
    assert_eq!(seen.len(), 50, "the newest 50 events");
    while let Some(older) = link(&html, "older-link") {
        assert!(
            older.starts_with(&format!("/rooms/{code}?before=")),
            "{older}"
        );
        html = alice.get(&older).await.text().await.unwrap();
        assert!(html.contains(r#"data-view="older""#));
        assert!(html.contains(r#"id="newest-link""#));
        let mut before = page_texts(&html);
        before.append(&mut seen);
        seen = before;
    }
    let all: Vec<String> = (1..=120)
        .map(|i| format!("{} {i}", if i % 40 == 0 { "apple" } else { "pear" }))
        .collect();
    assert_eq!(seen, all, "every message once, in order");

    // A search: its hits, in the order said, each linked in its context.
    let html = alice.get(&format!("/rooms/{code}?q=APPLE")).await;
    assert_eq!(html.status(), reqwest::StatusCode::OK);
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"data-view="search""#));
    assert!(html.contains("3 messages with “APPLE”"), "{html}");
    assert_eq!(page_texts(&html), ["apple 40", "apple 80", "apple 120"]);
    let start = html.find(r#"class="context" href=""#).unwrap() + r#"class="context" href=""#.len();
    let context = &html[start..start + html[start..].find('"').unwrap()];
    let context = context.replace("&#x3D;", "=");
    let (path, anchor) = context.split_once('#').unwrap();
    let around = alice.get(path).await.text().await.unwrap();
    assert!(around.contains(&format!(r#"id="{anchor}""#)), "{context}");
    assert!(page_texts(&around).contains(&"apple 40".to_string()));
    // Words that are no search say so, and show nothing.
    let html = alice.get(&format!("/rooms/{code}?q=%21%21")).await;
    let html = html.text().await.unwrap();
    assert!(html.contains("Search for at least one word"), "{html}");
    assert!(page_texts(&html).is_empty());
    // Someone not in the room learns nothing from either.
    for path in [
        format!("/rooms/{code}?q=apple"),
        format!("/rooms/{code}?before=50"),
    ] {
        let outsider = app.browser().get(&path).await;
        assert_eq!(outsider.status(), reqwest::StatusCode::SEE_OTHER);
        assert!(!outsider.text().await.unwrap().contains("apple"));
    }
}

#[tokio::test]
async fn without_script_older_pages_and_search_are_links() {
    let app = spawn_with(|_| {}).await;
    check_older_pages_and_search_without_script(&app).await;
}

#[tokio::test]
async fn without_script_older_pages_and_search_are_links_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let app = spawn_with(move |c| c.redis = Some(url)).await;
    check_older_pages_and_search_without_script(&app).await;
}
