//! Presence: a participant is in the room from their join until they
//! leave; whether they are here now (any stream of theirs open) is carried
//! in the `members` frame as `online`, never as history: coming back after
//! a dropped stream makes no notice.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};

use crate::helpers::{Sse, TestApp};
use crate::redis::Redis;

/// The room's stream as `token` reads it, resuming after `since` if given.
async fn stream(app: &TestApp, code: &str, token: &str, since: Option<u64>) -> Sse {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    if let Some(since) = since {
        headers.insert("last-event-id", since.to_string().parse().unwrap());
    }
    app.stream_with(&format!("/rooms/{code}/events"), headers)
        .await
}

/// Reads `members` frames until one says `name` is `online` (or not).
async fn until(stream: &mut Sse, name: &str, online: bool) -> Vec<(String, bool)> {
    loop {
        let present = stream.next_presence().await;
        if present.contains(&(name.to_string(), online)) {
            return present;
        }
    }
}

/// alice on `a`, bob on `b` (the same server, or two nodes on one Redis).
async fn check_presence_comes_and_goes_without_notices(a: &TestApp, b: &TestApp) {
    let code = a.create_room().await;
    let alice = a.token(&code, "alice").await;
    let bob = b.token(&code, "bob").await;
    let mut bobs = stream(b, &code, &bob, None).await;
    let present = until(&mut bobs, "bob", true).await;
    assert!(present.contains(&("alice".into(), false)), "{present:?}");

    let alices = stream(a, &code, &alice, None).await;
    until(&mut bobs, "alice", true).await;
    drop(alices);
    until(&mut bobs, "alice", false).await;
    // Back, as a reconnect is: after the last id she saw.
    let last = a.whole_history(&code).await.last().unwrap()["id"].as_u64();
    let again = stream(a, &code, &alice, last).await;
    let present = until(&mut bobs, "alice", true).await;
    assert!(present.contains(&("bob".into(), true)), "{present:?}");

    // One join each, and no leave, however often they came and went.
    let history = b.whole_history(&code).await;
    let notices: Vec<(&str, &str)> = history
        .iter()
        .filter(|e| e["kind"] != "message")
        .map(|e| (e["kind"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .filter(|(_, name)| *name != crate::helpers::READER)
        .collect();
    assert_eq!(notices, [("join", "alice"), ("join", "bob")]);
    drop(again);
}

#[tokio::test]
async fn presence_comes_and_goes_in_the_members_frame_without_notices() {
    let app = crate::helpers::spawn_app().await;
    check_presence_comes_and_goes_without_notices(&app, &app).await;
}

#[tokio::test]
async fn presence_crosses_nodes_and_a_node_gone_leaves_its_people_away_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let node = || {
        let url = redis.url();
        crate::helpers::spawn_with(move |c| c.redis = Some(url))
    };
    let (a, mut b) = (node().await, node().await);
    check_presence_comes_and_goes_without_notices(&a, &b).await;

    // carol's stream is on b, dan's on a; b stops (its word on who is
    // here is not taken back): within its five seconds she is away.
    let code = a.create_room().await;
    let carol = b.token(&code, "carol").await;
    let dan = a.token(&code, "dan").await;
    let mut dans = stream(&a, &code, &dan, None).await;
    let _carols = stream(&b, &code, &carol, None).await;
    until(&mut dans, "carol", true).await;
    b.shutdown().await;
    let started = tokio::time::Instant::now();
    let mut away = false;
    while !away {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "carol never went away"
        );
        away = dans
            .next_presence()
            .await
            .contains(&("carol".into(), false));
    }
}

#[tokio::test]
async fn a_reload_never_shows_its_person_away_and_back() {
    let app = crate::helpers::spawn_app().await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    let bob = app.token(&code, "bob").await;
    let mut bobs = stream(&app, &code, &bob, None).await;
    let first = stream(&app, &code, &alice, None).await;
    until(&mut bobs, "alice", true).await;
    // A reload: the page's stream closes and the next one opens at once.
    drop(first);
    let second = stream(&app, &code, &alice, None).await;
    // Longer than a last stream may be closed before its person shows
    // away (2 s), then a message as a marker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.say(&code, "bob", "marker").await;
    loop {
        let event = bobs.next().await;
        if event.event == "message" {
            break;
        }
        if event.event == "members" {
            let json = event.json();
            let away = json["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "alice" && p["online"] == false);
            assert!(!away, "alice flickered away: {json}");
        }
    }
    // Gone for good, she shows away.
    drop(second);
    until(&mut bobs, "alice", false).await;
}
