//! End-to-end tests in a real browser: headless Chromium against the real
//! server on port 0. Without Chromium they print a loud SKIPPED line,
//! unless ROOMCAST_REQUIRE_BROWSER=1 makes that a failure (as in CI).

mod changes;
mod harness;
#[allow(dead_code)] // the API tests' harness; only part of it is used here
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)] // restarting Redis is for the API tests
#[path = "../api/redis.rs"]
mod redis;
mod tabs;

use std::time::Duration;

use fantoccini::Locator;

use harness::{driver, Person, DESKTOP, ENTER, PHONE, RELEASE_KEYS, SHIFT};
use helpers::{spawn_with, TestApp};

async fn server() -> TestApp {
    spawn_with(|_| {}).await
}

fn base(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

async fn member_names(person: &Person) -> Vec<String> {
    let names = person
        .eval("[...document.querySelectorAll('#members li .name')].map(e => e.textContent)")
        .await;
    serde_json::from_value(names).unwrap()
}

/// alice (desktop) makes a room and bob (at `size`) joins it; both pages
/// are live, and alice has seen bob come. Returns them and the code.
async fn alice_and_bob(
    driver: &harness::Driver,
    app: &TestApp,
    size: (u32, u32),
) -> (Person, Person, String) {
    let alice = driver.person(DESKTOP, true).await;
    let bob = driver.person(size, true).await;
    let code = alice.enter(&base(app), "alice", None).await;
    alice.wait_until_live().await;
    bob.enter(&base(app), "bob", Some(&code)).await;
    bob.wait_until_live().await;
    alice.wait_for_text("bob joined").await;
    (alice, bob, code)
}

/// A script that is true once `name` is shown as `state` (online, away).
fn presence_is(name: &str, state: &str) -> String {
    format!(
        "[...document.querySelectorAll('#members li')].some(li => \
         li.querySelector('.name').textContent === '{name}' && li.classList.contains('{state}'))"
    )
}

#[tokio::test]
async fn two_people_chat_live_and_see_each_other_come_and_go() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let bob = driver.person(PHONE, true).await;

    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    let joined = bob
        .enter(&base(&app), "bob", Some(&code.to_lowercase()))
        .await;
    assert_eq!(joined, code);
    bob.wait_until_live().await;

    alice.wait_for_text("bob joined").await;
    alice
        .wait_for("document.querySelector('#member-count').textContent === '2'")
        .await;
    assert_eq!(member_names(&alice).await, vec!["alice", "bob"]);

    alice.say("hi bob").await;
    bob.wait_for_text("hi bob").await;
    bob.say("hi alice, all good?").await;
    alice.wait_for_text("hi alice, all good?").await;
    alice
        .type_text(&format!(
            "line one{SHIFT}{ENTER}{RELEASE_KEYS}line two{ENTER}"
        ))
        .await;
    bob.wait_for_text("line one\nline two").await;
    // The box clears when alice's post is answered, which may come after
    // bob's copy arrives.
    alice
        .wait_for("document.querySelector('#text').value === ''")
        .await;
    let mine = alice
        .eval("document.querySelectorAll('#log li.message.mine').length")
        .await;
    assert_eq!(mine, 2, "alice's own messages are marked as hers");

    // Away is not gone: bob closes his tab, and alice sees him away,
    // still in the room, with no notice; back in it, he is online.
    alice.wait_for(&presence_is("bob", "online")).await;
    let blank = bob.client.new_window(true).await.unwrap().handle;
    bob.client.close_window().await.unwrap();
    bob.switch_to(&blank).await;
    alice.wait_for(&presence_is("bob", "away")).await;
    bob.goto(&format!("{}/rooms/{code}", base(&app))).await;
    bob.wait_until_live().await;
    alice.wait_for(&presence_is("bob", "online")).await;
    let notices = alice
        .eval("[...document.querySelectorAll('#log .notice')].map(n => n.textContent.trim())")
        .await;
    let notices: Vec<String> = serde_json::from_value(notices).unwrap();
    let about_bob: Vec<&String> = notices.iter().filter(|n| n.contains("bob")).collect();
    assert_eq!(
        about_bob.len(),
        1,
        "one join, however he comes and goes: {notices:?}"
    );

    // Leaving is what ends his part: a notice, and his name is free.
    bob.eval("(document.querySelector('#leave').click(), true)")
        .await;
    alice.wait_for_text("bob left").await;
    alice
        .wait_for("document.querySelector('#member-count').textContent === '1'")
        .await;
    assert_eq!(member_names(&alice).await, vec!["alice"]);
    bob.wait_for("location.pathname === '/'").await;
    bob.close().await;
}

#[tokio::test]
async fn people_on_two_nodes_chat_through_redis() {
    let Some(driver) = driver() else { return };
    let Some(redis) = redis::Redis::start() else {
        return;
    };
    let node = || {
        let url = redis.url();
        spawn_with(move |c| c.redis = Some(url))
    };
    let (one, two) = (node().await, node().await);
    let alice = driver.person(DESKTOP, true).await;
    let bob = driver.person(PHONE, true).await;

    let code = alice.enter(&base(&one), "alice", None).await;
    alice.wait_until_live().await;
    assert_eq!(bob.enter(&base(&two), "bob", Some(&code)).await, code);
    bob.wait_until_live().await;
    alice.wait_for_text("bob joined").await;
    assert_eq!(member_names(&alice).await, vec!["alice", "bob"]);

    alice.say("hello from node one").await;
    bob.wait_for_text("hello from node one").await;
    bob.say("and from node two").await;
    alice.wait_for_text("and from node two").await;
    bob.eval("(document.querySelector('#leave').click(), true)")
        .await;
    alice.wait_for_text("bob left").await;
    assert_eq!(member_names(&alice).await, vec!["alice"]);
}

#[tokio::test]
async fn markup_in_messages_and_names_shows_as_text() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "<i>alice</i>", None).await;
    alice.wait_until_live().await;
    let nasty =
        "<b>bold?</b> <script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">";
    app.say(&code, "<b>mallory</b>", nasty).await;
    alice.say(nasty).await;
    alice
        .wait_for("document.querySelectorAll('#log li.message').length === 2")
        .await;
    assert_eq!(alice.message_texts().await, vec![nasty, nasty]);
    assert_eq!(
        alice
            .eval("document.querySelectorAll('#log b, #log script, #log img, #log i').length")
            .await,
        0
    );
    assert_eq!(alice.eval("window.pwned === undefined").await, true);
    // The same after a reload, from the server-rendered history.
    alice.client.refresh().await.unwrap();
    alice
        .wait_for("document.querySelectorAll('#log li.message').length === 2")
        .await;
    assert_eq!(alice.message_texts().await, vec![nasty, nasty]);
    assert_eq!(
        alice
            .eval("document.querySelectorAll('#log b, #log script, #log img, #log i').length")
            .await,
        0
    );
    assert!(alice.text_of("#log").await.contains("<b>mallory</b>"));
}

#[tokio::test]
async fn a_reload_keeps_history_and_loses_nothing_posted_during_it() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    for i in 1..=5 {
        app.say(&code, "bob", &format!("before {i}")).await;
    }
    alice.wait_for_text("before 5").await;

    let poster = {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/rooms/{code}/messages")),
        );
        let bob = app.token(&code, "bob").await;
        tokio::spawn(async move {
            for i in 1..=20 {
                let body = serde_json::json!({"text": format!("during {i}")});
                let request = client.post(&url).bearer_auth(&bob).json(&body);
                request.send().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    alice.client.refresh().await.unwrap();
    poster.await.unwrap();
    alice.wait_for_text("during 20").await;
    let mut expected: Vec<String> = (1..=5).map(|i| format!("before {i}")).collect();
    expected.extend((1..=20).map(|i| format!("during {i}")));
    assert_eq!(
        alice.message_texts().await,
        expected,
        "all of it, once, in order"
    );
}

/// A send while the server is down waits in the page, shown as pending,
/// and goes by itself once the server is back: stored once (its
/// Idempotency-Key), after what others posted meanwhile, and a reload
/// after the restart keeps the name.
#[tokio::test]
async fn after_a_server_restart_the_page_is_live_and_a_send_queued_while_down_arrives_once() {
    let Some(driver) = driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(|c| c.db = db).await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    alice.say("before the restart").await;
    alice.wait_for_text("before the restart").await;

    // Down: the page says the server is unreachable (the network is up),
    // and a send waits in the page, shown as pending, the box cleared.
    app.shutdown().await;
    alice
        .wait_for("document.querySelector('#status').dataset.state === 'reconnecting'")
        .await;
    let status = alice.text_of("#status").await;
    assert!(status.contains("Server unreachable"), "{status}");
    // While down, the page offers to try again now (the button reconnects
    // at once; the page tries by itself meanwhile).
    assert_eq!(
        alice
            .eval("document.querySelector('#retry-now').hidden")
            .await,
        false
    );
    alice.say("typed while down").await;
    alice
        .wait_for("document.querySelector('#outbox .pending .sending').textContent === 'Waiting to send…'")
        .await;
    assert_eq!(
        alice.eval("document.querySelector('#text').value").await,
        ""
    );
    assert_eq!(
        alice
            .eval("document.querySelector('#send-error').hidden")
            .await,
        true
    );

    // Up again: live, and the queued message goes by itself, once.
    app.restart().await; // the same port and store
    app.say(&code, "bob", "posted while you were away").await;
    alice.wait_until_live().await;
    assert_eq!(
        alice
            .eval("document.querySelector('#retry-now').hidden")
            .await,
        true
    );
    alice.wait_for_text("posted while you were away").await;
    alice.wait_for_text("typed while down").await;
    alice
        .wait_for("document.querySelectorAll('#outbox li').length === 0")
        .await;
    // In the order the server stored them (the queued one may go before
    // or after bob's, as it reconnects), each once.
    let history = app.whole_history(&code).await;
    let expected: Vec<String> = (history.iter())
        .filter(|e| e["kind"] == "message")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "before the restart",
            "posted while you were away",
            "typed while down"
        ]
    );
    assert_eq!(alice.message_texts().await, expected);

    // A reload after the restart is the same person, in the same room.
    alice.client.refresh().await.unwrap();
    alice.wait_until_live().await;
    assert_eq!(
        alice
            .eval("document.querySelector('#room').dataset.me")
            .await,
        "alice"
    );
    assert_eq!(alice.message_texts().await, expected);
}

#[tokio::test]
async fn a_hidden_tab_counts_unread_messages_in_its_title() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    assert_eq!(
        alice.client.title().await.unwrap(),
        format!("{code} · roomcast")
    );
    alice.hide(true).await;
    for i in 1..=3 {
        app.say(&code, "bob", &format!("unread {i}")).await;
    }
    alice.wait_for_text("unread 3").await;
    assert_eq!(
        alice.client.title().await.unwrap(),
        format!("(3) {code} · roomcast")
    );
    alice.hide(false).await;
    assert_eq!(
        alice.client.title().await.unwrap(),
        format!("{code} · roomcast")
    );
}

#[tokio::test]
async fn the_invite_link_opens_the_home_form_with_the_code() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    let invite = alice.eval("document.querySelector('#invite').href").await;
    let invite = invite.as_str().unwrap().to_string();
    assert_eq!(invite, format!("{}/?code={code}", base(&app)));
    assert_eq!(
        alice
            .eval("document.querySelector('#copy-invite').hidden")
            .await,
        false
    );

    let bob = driver.person(PHONE, true).await;
    bob.goto(&invite).await;
    assert_eq!(
        bob.eval("document.querySelector('#code').value").await,
        code.as_str()
    );
    bob.client
        .find(fantoccini::Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys(&format!("bob{ENTER}"))
        .await
        .unwrap();
    let url = bob
        .wait_for("location.pathname.startsWith('/rooms/') && location.pathname")
        .await;
    assert_eq!(
        url,
        format!("/rooms/{code}").as_str(),
        "Enter joins the invited room"
    );
}

#[tokio::test]
async fn without_javascript_the_room_shows_history_and_sends() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let carol = driver.person(DESKTOP, false).await;
    let code = carol.enter(&base(&app), "carol", None).await;
    app.say(&code, "bob", "history from before").await;
    carol.client.refresh().await.unwrap();
    assert!(carol.text_of("#log").await.contains("history from before"));
    carol.type_text("sent with a plain form").await;
    carol
        .client
        .find(fantoccini::Locator::Css("#compose button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page navigates (POST, 303, GET), so #log may be missing for a
    // moment; wait_for_text retries through that.
    carol.wait_for_text("sent with a plain form").await;
    let url = carol.client.current_url().await.unwrap();
    assert_eq!(url.path(), format!("/rooms/{code}"), "303 back to the room");
    let stored = app.history(&code, "").await;
    assert_eq!(stored.last().unwrap()["name"], "carol");
}

#[tokio::test]
async fn screenshots_of_home_and_a_busy_room() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let desk = driver.person(DESKTOP, true).await;
    desk.goto(&format!("{}/", base(&app))).await;
    desk.screenshot("home-desktop").await;
    let code = desk.enter(&base(&app), "alice", None).await;
    let phone = driver.person(PHONE, true).await;
    phone.enter(&base(&app), "bob", Some(&code)).await;
    let lines = [
        ("bob", "Morning! Did the deploy go out?"),
        ("bob", "I saw the dashboard flicker around 9."),
        ("carol", "It did. Notes are here: https://example.org/notes/deploy-42"),
        ("alice", "Thanks! Reading now."),
        ("alice", "One question: did we keep the old config around, or should I restore it from the backup before the next release? Asking because the diff is large and I would rather not guess."),
        ("carol", "Kept it. Look for config.old next to the new one."),
        ("bob", "👍"),
    ];
    for (name, text) in lines {
        if name == "alice" {
            desk.say(text).await;
        } else if name == "bob" {
            phone.say(text).await;
        } else {
            app.say(&code, name, text).await;
        }
        desk.wait_for_text(text).await;
    }
    phone.wait_for_text("👍").await;
    // A conversation as it lives: an edit, reactions, someone typing.
    let id_of = |text: &str| {
        format!(
            "[...document.querySelectorAll('#log li.message')].find(li => \
             li.querySelector('.text').textContent === {}).dataset.id",
            serde_json::to_string(text).unwrap()
        )
    };
    let thanks = desk.eval(&id_of("Thanks! Reading now.")).await;
    let notes = desk.eval(&id_of(lines[2].1)).await;
    let change = |path: String, method: &str, body: serde_json::Value| {
        format!(
            "fetch('/rooms/{code}/messages/{path}', {{method: '{method}', \
             headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({body})}}) \
             .then(r => r.status)"
        )
    };
    let thanks = thanks.as_str().unwrap();
    let notes = notes.as_str().unwrap();
    let edit = change(
        thanks.into(),
        "PATCH",
        serde_json::json!({"text": "Thanks! Reading them now."}),
    );
    assert_eq!(desk.eval(&edit).await, 200);
    for (who, emoji) in [(&desk, "🎉"), (&phone, "🎉"), (&phone, "👍")] {
        let react = change(
            format!("{notes}/reactions"),
            "POST",
            serde_json::json!({"emoji": emoji}),
        );
        assert_eq!(who.eval(&react).await, 200);
    }
    desk.wait_for_text("(edited)").await;
    desk.wait_for(&format!(
        "document.querySelector('#log li[data-id=\"{notes}\"] .reactions').textContent.includes('🎉 2')"
    ))
    .await;
    let carol = app.token(&code, "carol").await;
    let typed = app
        .client
        .post(app.url(&format!("/rooms/{code}/typing")))
        .bearer_auth(carol)
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), reqwest::StatusCode::NO_CONTENT);
    desk.wait_for("document.querySelector('#typing').textContent === 'carol is typing…'")
        .await;
    phone
        .wait_for("document.querySelector('#typing').textContent === 'carol is typing…'")
        .await;
    desk.screenshot("room-desktop").await;
    phone.screenshot("room-phone").await;
    let home_phone = driver.person(PHONE, true).await;
    home_phone
        .goto(&format!("{}/?code={code}", base(&app)))
        .await;
    home_phone.screenshot("home-phone").await;
}

#[tokio::test]
async fn alice_takes_her_place_to_a_second_device_through_a_one_time_link() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let bob = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    bob.enter(&base(&app), "bob", Some(&code)).await;
    bob.wait_until_live().await;

    // On the laptop: "Use on another device" shows the link.
    alice
        .eval("(document.querySelector('#other-device').click(), true)")
        .await;
    let link = alice
        .wait_for(
            "document.querySelector('#device-link') && document.querySelector('#device-link').href",
        )
        .await;
    let link = link.as_str().unwrap().to_string();

    // On the phone (a browser of its own): open it, sign in, go to the room.
    let phone = driver.person(PHONE, true).await;
    phone.goto(&link).await;
    phone
        .eval("(document.querySelector('#use-device-link').click(), true)")
        .await;
    phone.wait_for("location.pathname === '/'").await;
    phone
        .wait_for(&format!(
            "document.querySelector('a[href=\"/rooms/{code}\"]') !== null"
        ))
        .await;
    phone.goto(&format!("{}/rooms/{code}", base(&app))).await;
    phone.wait_until_live().await;
    phone.say("from my phone").await;
    bob.wait_for_text("from my phone").await;
    let sender = bob
        .eval("[...document.querySelectorAll('#log li.message')].pop().querySelector('.who').textContent")
        .await;
    assert_eq!(sender, "alice", "the phone speaks as alice");
    assert_eq!(member_names(&bob).await, vec!["alice", "bob"], "one alice");

    // The link worked once: a third browser gets nothing from it.
    let thief = driver.person(PHONE, true).await;
    thief.goto(&link).await;
    thief
        .eval("(document.querySelector('#use-device-link').click(), true)")
        .await;
    thief
        .wait_for("document.body.innerText.includes('used already')")
        .await;
}

#[tokio::test]
async fn one_browser_in_three_rooms_reloads_each_without_being_sent_home() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let first = alice.enter(&base(&app), "alice", None).await;
    let second = alice.enter(&base(&app), "alice", None).await;
    let third = app.create_room().await;
    assert_eq!(alice.enter(&base(&app), "al", Some(&third)).await, third);
    for (code, me) in [(&first, "alice"), (&second, "alice"), (&third, "al")] {
        alice.goto(&format!("{}/rooms/{code}", base(&app))).await;
        alice.client.refresh().await.unwrap();
        let path = alice.eval("location.pathname").await;
        assert_eq!(path, format!("/rooms/{code}"), "not sent home");
        let shown = alice
            .eval("document.querySelector('#room').dataset.me")
            .await;
        assert_eq!(shown, me);
    }
    alice.goto(&format!("{}/", base(&app))).await;
    for code in [&first, &second, &third] {
        alice
            .wait_for(&format!(
                "document.querySelector('.your-rooms a[href=\"/rooms/{code}\"]') !== null"
            ))
            .await;
    }
}

#[tokio::test]
async fn the_room_reads_well_links_in_history_focus_log_grouping_and_clock() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    // The message box has focus as the room opens, and the log is one.
    assert_eq!(alice.eval("document.activeElement.id").await, "text");
    assert_eq!(
        alice
            .eval("document.querySelector('#log').getAttribute('role')")
            .await,
        "log"
    );
    app.say(&code, "bob", "see https://example.com/a?b=1 here")
        .await;
    app.say(&code, "bob", "and again").await;
    // Reloaded: now history, rendered by the server.
    alice.client.refresh().await.unwrap();
    alice
        .wait_for("document.querySelectorAll('#log li.message').length === 2")
        .await;
    let link = alice
        .eval("(() => { const a = document.querySelector('#log li.message .text a'); return a && [a.href, a.target, a.textContent]; })()")
        .await;
    assert_eq!(
        link,
        serde_json::json!([
            "https://example.com/a?b=1",
            "_blank",
            "https://example.com/a?b=1"
        ])
    );
    // The second of bob's is grouped: its sender still read out (hidden
    // from sight only), its time there for hover.
    let grouped = alice
        .eval("(() => { const li = document.querySelectorAll('#log li.message')[1]; const who = li.querySelector('.who'); const t = li.querySelector('time'); return [li.classList.contains('grouped'), who.textContent, getComputedStyle(who).display !== 'none', getComputedStyle(t).display !== 'none']; })()")
        .await;
    assert_eq!(grouped, serde_json::json!([true, "bob", true, true]));
    // Times read as a clock does: "4:13 PM", no leading zero.
    let clock = alice
        .eval("(() => { const t = document.querySelector('#log li.message time'); const f = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' }); return [t.textContent, f.format(new Date(t.getAttribute('datetime')))]; })()")
        .await;
    assert_eq!(clock[0], clock[1], "{clock}");
    assert!(!clock[0].as_str().unwrap().starts_with('0'), "{clock}");
}

#[tokio::test]
async fn after_an_unknown_code_the_code_has_focus_to_type_anew() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let dave = driver.person(DESKTOP, true).await;
    dave.goto(&format!("{}/", base(&app))).await;
    dave.eval("document.querySelector('#name').value = 'dave'")
        .await;
    dave.eval("document.querySelector('#code').value = 'ZZZZ'")
        .await;
    dave.eval("document.querySelector('button[value=join]').click()")
        .await;
    dave.wait_for(
        "document.querySelector('#form-error')?.textContent === 'Room ZZZZ does not exist.'",
    )
    .await;
    let focus = dave
        .eval("(() => { const e = document.activeElement; return [e.id, e.selectionStart, e.selectionEnd, document.querySelector('button.primary').textContent]; })()")
        .await;
    assert_eq!(focus, serde_json::json!(["code", 0, 4, "Join room"]));
}

#[tokio::test]
async fn scrolling_up_loads_older_messages_in_order_keeping_the_place() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    for i in 1..=120 {
        app.say(&code, "bob", &format!("m{i}")).await;
    }
    alice.client.refresh().await.unwrap();
    alice.wait_until_live().await;
    let count = "document.querySelectorAll('#log li.message').length";
    assert_eq!(
        alice.eval(count).await,
        50,
        "the page opens with the newest 50"
    );
    // To the top: the 50 before load, and what was at the top stays in view.
    let top_before = alice
        .eval("document.querySelector('#log li.message .text').textContent")
        .await;
    assert_eq!(top_before, "m71");
    alice
        .eval("document.querySelector('.messages').scrollTop = 0")
        .await;
    alice.wait_for(&format!("{count} === 100")).await;
    let kept = alice
        .eval("(() => { const s = document.querySelector('.messages'); const li = [...document.querySelectorAll('#log li.message')].find((e) => e.querySelector('.text').textContent === 'm71'); const r = li.getBoundingClientRect(), v = s.getBoundingClientRect(); return s.scrollTop > 0 && r.top >= v.top - 5 && r.top < v.bottom; })()")
        .await;
    assert_eq!(kept, true, "m71 stays where it was");
    alice
        .eval("document.querySelector('.messages').scrollTop = 0")
        .await;
    alice.wait_for(&format!("{count} === 120")).await;
    let texts = alice.message_texts().await;
    let expected: Vec<String> = (1..=120).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "every message once, in order");
    // One day separator per day: where the pages met there is no second.
    let days = alice
        .eval("[document.querySelectorAll('#log li.day').length, new Set([...document.querySelectorAll('#log li.event time')].map((t) => new Date(t.getAttribute('datetime')).toDateString())).size]")
        .await;
    assert_eq!(days[0], days[1], "{days}");
}

/// A search from the room's box lists the messages with the words; a hit
/// far back (not on the page yet) is shown in the log among its
/// neighbours, marked and in view.
#[tokio::test]
async fn a_search_hit_is_shown_in_the_log_with_its_context() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    for i in 1..=130 {
        let text = if i == 7 {
            "the needle is here".to_string()
        } else {
            format!("hay {i}")
        };
        app.say(&code, "bob", &text).await;
    }
    alice.wait_for_text("hay 130").await;
    let field = alice
        .client
        .find(Locator::Css("#search-words"))
        .await
        .unwrap();
    field.send_keys(&format!("need{ENTER}")).await.unwrap();
    alice
        .wait_for(
            "document.querySelector('#search-summary').textContent === '1 found, newest first:'",
        )
        .await;
    assert_eq!(alice.text_of("#search-hits li .who").await, "bob");
    alice
        .client
        .find(Locator::Css("#search-hits button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let found = alice
        .wait_for("document.querySelector('#log li.found .text')?.textContent")
        .await;
    assert_eq!(found, "the needle is here");
    // Its context: the messages before and after it, in order, once each.
    let texts = alice.message_texts().await;
    let at = texts
        .iter()
        .position(|t| t == "the needle is here")
        .unwrap();
    assert_eq!(texts[at - 1], "hay 6");
    assert_eq!(texts[at + 1], "hay 8");
    assert_eq!(texts.len(), 130, "every message once");
    let in_view = alice
        .eval("(() => { const r = document.querySelector('#log li.found').getBoundingClientRect(), v = document.querySelector('.messages').getBoundingClientRect(); return r.top >= v.top && r.bottom <= v.bottom; })()")
        .await;
    assert_eq!(in_view, true);
    assert_eq!(
        alice
            .eval("document.activeElement === document.querySelector('#log li.found')")
            .await,
        true
    );
}

#[tokio::test]
async fn who_is_typing_shows_on_the_other_page_and_clears() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let (alice, bob, _) = alice_and_bob(&driver, &app, PHONE).await;

    bob.type_text("half a thought").await;
    alice
        .wait_for("document.querySelector('#typing').textContent === 'bob is typing…'")
        .await;
    let own = bob
        .eval("document.querySelector('#typing').textContent")
        .await;
    assert_eq!(own, "", "nobody is told of their own typing");
    // Five seconds after the last word of it, the line clears.
    alice
        .wait_for("document.querySelector('#typing').textContent === ''")
        .await;
    // And at once when the message arrives.
    bob.type_text(" more").await;
    alice
        .wait_for("document.querySelector('#typing').textContent === 'bob is typing…'")
        .await;
    bob.type_text(ENTER).await;
    alice.wait_for_text("half a thought more").await;
    let line = alice
        .eval("document.querySelector('#typing').textContent")
        .await;
    assert_eq!(line, "");
}
