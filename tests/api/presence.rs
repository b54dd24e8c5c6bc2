//! Who is in a room: join, leave after the grace, members updates.

use std::time::Duration;

use crate::helpers::spawn_with;

fn grace(secs: f64) -> impl FnOnce(&mut roomcast::Config) {
    move |c| c.leave_grace = Duration::from_secs_f64(secs)
}

#[tokio::test]
async fn a_member_joins_and_leaves_after_the_grace() {
    let app = spawn_with(grace(0.2)).await;
    let code = app.create_room().await;
    let mut bob = app.stream(&format!("/rooms/{code}/events?name=bob")).await;
    assert_eq!(bob.next_history().await.json()["name"], "bob");
    assert_eq!(bob.next_members().await, vec!["bob"]);

    let alice = app
        .stream(&format!("/rooms/{code}/events?name=alice"))
        .await;
    let join = bob.next_history().await;
    assert_eq!(
        (join.event.as_str(), join.json()["name"].as_str()),
        ("join", Some("alice"))
    );
    assert_eq!(bob.next_members().await, vec!["alice", "bob"]);

    drop(alice);
    let leave = bob.next_history().await;
    assert_eq!(
        (leave.event.as_str(), leave.json()["name"].as_str()),
        ("leave", Some("alice"))
    );
    assert_eq!(bob.next_members().await, vec!["bob"]);
    let history = app.history(&code, "?since=0").await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["join", "join", "leave"],
        "join and leave are history"
    );
}

#[tokio::test]
async fn a_reload_within_the_grace_is_not_a_leave() {
    let app = spawn_with(grace(1.0)).await;
    let code = app.create_room().await;
    let mut bob = app.stream(&format!("/rooms/{code}/events?name=bob")).await;
    let alice = app
        .stream(&format!("/rooms/{code}/events?name=alice"))
        .await;
    assert_eq!(bob.next_history().await.event, "join");
    assert_eq!(bob.next_history().await.json()["name"], "alice");

    drop(alice);
    tokio::time::sleep(Duration::from_millis(300)).await; // the server has seen it go
    let alice = app
        .stream(&format!("/rooms/{code}/events?name=alice&since=2"))
        .await;
    app.say(&code, "bob", "marker").await;
    assert_eq!(
        bob.next_history().await.json()["text"],
        "marker",
        "no leave, no second join"
    );

    drop(alice);
    let leave = bob.next_history().await;
    assert_eq!(
        (leave.event.as_str(), leave.json()["name"].as_str()),
        ("leave", Some("alice"))
    );
}

#[tokio::test]
async fn a_member_with_two_tabs_stays_until_both_close() {
    let app = spawn_with(grace(0.2)).await;
    let code = app.create_room().await;
    let mut bob = app.stream(&format!("/rooms/{code}/events?name=bob")).await;
    let first_tab = app
        .stream(&format!("/rooms/{code}/events?name=alice"))
        .await;
    let second_tab = app
        .stream(&format!("/rooms/{code}/events?name=alice"))
        .await;
    assert_eq!(bob.next_history().await.json()["name"], "bob");
    assert_eq!(bob.next_history().await.json()["name"], "alice");

    drop(first_tab);
    tokio::time::sleep(Duration::from_millis(600)).await; // well past the grace
    app.say(&code, "bob", "still there?").await;
    assert_eq!(
        bob.next_history().await.json()["text"],
        "still there?",
        "one join, no leave"
    );

    drop(second_tab);
    let leave = bob.next_history().await;
    assert_eq!(
        (leave.event.as_str(), leave.json()["name"].as_str()),
        ("leave", Some("alice"))
    );
}

#[tokio::test]
async fn followers_are_silent() {
    let app = spawn_with(grace(0.2)).await;
    let code = app.create_room().await;
    let mut bob = app.stream(&format!("/rooms/{code}/events?name=bob")).await;
    bob.next_history().await;
    assert_eq!(bob.next_members().await, vec!["bob"]);

    let mut follower = app.stream(&format!("/rooms/{code}/events")).await;
    assert_eq!(follower.next_members().await, vec!["bob"]);
    drop(follower);
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.say(&code, "bob", "marker").await;
    assert_eq!(
        bob.next_history().await.json()["text"],
        "marker",
        "no join or leave for a follower"
    );
}

#[tokio::test]
async fn the_browser_session_makes_its_stream_a_member() {
    let app = spawn_with(grace(0.2)).await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mut observer = app.stream(&format!("/rooms/{code}/events")).await;
    assert_eq!(observer.next_members().await, Vec::<String>::new());

    let _page_stream = alice.stream(&code, 0).await;
    let join = observer.next_history().await;
    assert_eq!(
        (join.event.as_str(), join.json()["name"].as_str()),
        ("join", Some("alice"))
    );
    assert_eq!(observer.next_members().await, vec!["alice"]);
    let html = alice.room_page(&code).await;
    assert!(
        html.contains("<li>alice</li>"),
        "the page lists the members"
    );
}
