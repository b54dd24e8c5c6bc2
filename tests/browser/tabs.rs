//! Many tabs of one browser over several rooms: every tab works, and the
//! browser holds one stream for all of them (a SharedWorker, or the tab
//! elected with Web Locks), not one per tab: HTTP/1.1 allows six
//! connections per site, so a seventh tab used to stay blank. Over
//! HTTP/2 (TLS) the tabs work even with a stream each: one connection
//! carries them all.

use fantoccini::wd::WindowHandle;

use crate::harness::{driver, Person, DESKTOP};
use crate::helpers::{eventually, metric, spawn_tls, spawn_with, TestApp};

const TABS: usize = 10;
const ROOMS: usize = 4;

/// One person with `ROOMS` rooms and `TABS` tabs over them (tab i shows
/// room i % ROOMS), sharing their stream the way `share` says.
async fn tabs(app: &TestApp, person: &Person, share: &str) -> (Vec<String>, Vec<WindowHandle>) {
    let base = app.base();
    // localStorage is the site's, so every page opened after reads it.
    person.goto(&format!("{base}/")).await;
    let literal = serde_json::to_string(share).unwrap();
    person
        .eval(&format!(
            "localStorage.setItem('roomcast-share', {literal}) || true"
        ))
        .await;
    let mut codes = Vec::new();
    for _ in 0..ROOMS {
        codes.push(person.enter(&base, "alice", None).await);
    }
    let mut handles = vec![person.client.window().await.unwrap()];
    for _ in 1..TABS {
        let opened = person.client.new_window(true).await.unwrap();
        handles.push(opened.handle);
    }
    for (i, handle) in handles.iter().enumerate() {
        person.switch_to(handle).await;
        person
            .goto(&format!("{base}/rooms/{}", codes[i % ROOMS]))
            .await;
    }
    for handle in &handles {
        person.switch_to(handle).await;
        person.wait_until_live().await;
    }
    (codes, handles)
}

/// How many times the tab on now shows a message reading `text`.
async fn times_shown(person: &Person, text: &str) -> u64 {
    let literal = serde_json::to_string(text).unwrap();
    let count = person
        .eval(&format!(
            "[...document.querySelectorAll('#log li.message .text')].filter(e => e.textContent === {literal}).length"
        ))
        .await;
    count.as_u64().unwrap()
}

/// Posts one message into each room (as bob, from a script) and checks
/// that every tab in `open` shows its room's exactly once.
async fn everyone_sees_once(
    app: &TestApp,
    person: &Person,
    codes: &[String],
    open: &[(usize, WindowHandle)],
    round: &str,
) {
    for code in codes {
        app.say(code, "bob", &format!("{round} in {code}")).await;
    }
    for (i, handle) in open {
        person.switch_to(handle).await;
        let text = format!("{round} in {}", codes[i % ROOMS]);
        person.wait_for_text(&text).await;
        assert_eq!(times_shown(person, &text).await, 1, "tab {i}: {text}");
    }
}

/// Every tab in `open` sends a message, and each is stored once.
async fn every_tab_sends(
    app: &TestApp,
    person: &Person,
    codes: &[String],
    open: &[(usize, WindowHandle)],
) {
    for (i, handle) in open {
        person.switch_to(handle).await;
        person.say(&format!("from tab {i}")).await;
    }
    for (i, _) in open {
        let code = &codes[i % ROOMS];
        let text = format!("from tab {i}");
        eventually(&format!("{text} stored once"), || async {
            let history = app.whole_history(code).await;
            history
                .iter()
                .filter(|e| e["text"] == text.as_str())
                .count()
                == 1
        })
        .await;
    }
}

/// The server sees one stream for the whole browser.
async fn one_stream(app: &TestApp) {
    eventually("one open stream for every tab", || async {
        let open = metric(app, "roomcast_streams_open").await;
        open == 1
    })
    .await;
}

async fn ten_tabs_share_one_stream(share: &str) {
    let Some(driver) = driver() else { return };
    let app = spawn_with(|_| {}).await;
    let alice = driver.person(DESKTOP, true).await;
    let (codes, handles) = tabs(&app, &alice, share).await;
    one_stream(&app).await;
    let open: Vec<(usize, WindowHandle)> = handles.iter().cloned().enumerate().collect();
    everyone_sees_once(&app, &alice, &codes, &open, "first").await;
    every_tab_sends(&app, &alice, &codes, &open).await;

    // Close the tab that holds the stream (with a SharedWorker no tab
    // does: close the first three): the rest lose nothing.
    let leader = if share == "locks" {
        let mut leader = None;
        for (i, handle) in &open {
            alice.switch_to(handle).await;
            if alice
                .eval("document.documentElement.dataset.hub === 'leads'")
                .await
                == true
            {
                leader = Some(*i);
            }
        }
        vec![leader.expect("one tab leads")]
    } else {
        vec![0, 1, 2]
    };
    for i in &leader {
        alice.switch_to(&handles[*i]).await;
        alice.client.close_window().await.unwrap();
    }
    let rest: Vec<(usize, WindowHandle)> = open
        .into_iter()
        .filter(|(i, _)| !leader.contains(i))
        .collect();
    everyone_sees_once(&app, &alice, &codes, &rest, "after").await;
    one_stream(&app).await;
}

#[tokio::test]
async fn ten_tabs_over_four_rooms_share_one_stream_in_a_shared_worker() {
    ten_tabs_share_one_stream("worker").await;
}

#[tokio::test]
async fn ten_tabs_share_one_stream_through_the_tab_elected_by_web_locks() {
    ten_tabs_share_one_stream("locks").await;
}

#[tokio::test]
async fn ten_tabs_each_with_its_own_stream_all_work_over_http2() {
    let Some(driver) = driver() else { return };
    let app = spawn_tls(|_| {}).await;
    // The test's certificate is its own, trusted by no browser.
    let alice = driver
        .person_with(DESKTOP, true, &["--ignore-certificate-errors"])
        .await;
    // No sharing: every tab opens its own stream, as without a worker or
    // locks, and HTTP/2 alone must carry them.
    let (codes, handles) = tabs(&app, &alice, "alone").await;
    let protocol = alice
        .eval("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        .await;
    assert_eq!(protocol, "h2");
    eventually("a stream per tab", || async {
        metric(&app, "roomcast_streams_open").await == TABS as u64
    })
    .await;
    let open: Vec<(usize, WindowHandle)> = handles.into_iter().enumerate().collect();
    everyone_sees_once(&app, &alice, &codes, &open, "first").await;
    every_tab_sends(&app, &alice, &codes, &open).await;
}

/// The unread badge of `code` in the page's "your rooms" list ("" when
/// hidden).
async fn badge(person: &Person, code: &str) -> String {
    let value = person
        .eval(&format!(
            "(() => {{ const b = document.querySelector('.your-rooms li[data-room={code}] .unread'); return b && !b.hidden ? b.textContent : ''; }})()"
        ))
        .await;
    value.as_str().unwrap_or_default().to_string()
}

async fn wait_for_badge(person: &Person, code: &str, want: &str) {
    let literal = serde_json::to_string(want).unwrap();
    person
        .wait_for(&format!(
            "(() => {{ const b = document.querySelector('.your-rooms li[data-room={code}] .unread'); return (b && !b.hidden ? b.textContent : '') === {literal}; }})()"
        ))
        .await;
}

#[tokio::test]
async fn your_rooms_count_unread_messages_live_and_across_reloads() {
    let Some(driver) = driver() else { return };
    let app = spawn_with(|_| {}).await;
    let base = format!("http://{}", app.addr);
    let alice = driver.person(DESKTOP, true).await;
    let a = alice.enter(&base, "alice", None).await;
    alice.enter(&base, "alice", None).await;
    alice.wait_until_live().await;
    let on_b = alice.client.window().await.unwrap();
    assert_eq!(badge(&alice, &a).await, "");
    // Someone speaks in a while alice looks at b: counted live; alice's
    // own words (from another tab) are not unread.
    app.say(&a, "bob", "one").await;
    app.say(&a, "bob", "two").await;
    wait_for_badge(&alice, &a, "2").await;
    // Looking at a (in another tab) reads it, and b's page knows at once.
    let on_a = alice.client.new_window(true).await.unwrap().handle;
    alice.switch_to(&on_a).await;
    alice.goto(&format!("{base}/rooms/{a}")).await;
    alice.wait_for_text("two").await;
    alice.say("mine").await;
    alice.wait_for_text("mine").await;
    alice.client.close_window().await.unwrap();
    alice.switch_to(&on_b).await;
    wait_for_badge(&alice, &a, "").await;
    // What came while no page showed a is still unread after a reload.
    app.say(&a, "bob", "three").await;
    wait_for_badge(&alice, &a, "1").await;
    alice.client.refresh().await.unwrap();
    alice.wait_until_live().await;
    wait_for_badge(&alice, &a, "1").await;
}

#[tokio::test]
async fn in_more_rooms_than_a_stream_follows_the_room_shown_stays_live() {
    let Some(driver) = driver() else { return };
    let app = spawn_with(|_| {}).await;
    let alice = driver.person(DESKTOP, true).await;
    let base = app.base();
    let shown = alice.enter(&base, "alice", None).await;
    // 50 more rooms in the same session, joined from the page itself: with
    // the one shown, one more than a stream may follow.
    let mut others = Vec::new();
    for _ in 0..50 {
        others.push(app.create_room().await);
    }
    let codes = serde_json::to_string(&others).unwrap();
    let statuses = alice
        .eval(&format!(
            "Promise.all({codes}.map((c) => fetch(`/rooms/${{c}}/join`, {{
                method: 'POST',
                headers: {{ 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }},
                body: 'name=alice',
            }}).then((r) => r.status)))"
        ))
        .await;
    assert!(
        statuses.as_array().unwrap().iter().all(|s| s == 201),
        "{statuses}"
    );
    alice.goto(&format!("{base}/rooms/{shown}")).await;
    alice.wait_until_live().await;
    one_stream(&app).await;
    app.say(&shown, "bob", "still live with 51 rooms").await;
    alice.wait_for_text("still live with 51 rooms").await;
    // The other rooms are counted as far as the stream goes: the first
    // listed is followed.
    let first = alice
        .eval("document.querySelector('.your-rooms li[data-room]').dataset.room")
        .await;
    let first = first.as_str().unwrap();
    app.say(first, "bob", "in the first other room").await;
    wait_for_badge(&alice, first, "1").await;
}
