//! Who is in a room: joining and leaving, tokens and cookies, names
//! nobody can forge, watchers, and no invisible readers. Each rule is
//! tried the way an outsider would.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, TestApp};

/// GETs `path` with `token` as the bearer (none if `None`).
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = app.client.get(app.url(path));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// POSTs JSON `body` to `path` with `token` as the bearer.
async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let request = app.client.post(app.url(path)).json(&body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn assert_unauthorized(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "join the room first"}), "{what}");
}

#[tokio::test]
async fn joining_gives_a_token_that_reads_streams_and_posts() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let response = app.join_as(&code, json!({"name": "bot"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["room"], code.as_str());
    assert_eq!(body["name"], "bot");
    let token = body["token"].as_str().unwrap();
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    assert!(cookie.contains(token), "the cookie is the same session");

    let mut stream = app
        .stream_with(&format!("/rooms/{code}/events"), bearer(token))
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.next_members().await, vec!["bot"]);
    let posted = post(
        &app,
        &format!("/rooms/{code}/messages"),
        Some(token),
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(posted.status(), StatusCode::CREATED);
    let posted: Value = posted.json().await.unwrap();
    assert_eq!(posted["name"], "bot", "sent as the participant");
    assert_eq!(stream.next_history().await.json()["text"], "hi");
    let history = get(
        &app,
        &format!("/rooms/{code}/messages?since=0"),
        Some(token),
    )
    .await;
    assert_eq!(history.status(), StatusCode::OK);
    let history: Vec<Value> = history.json().await.unwrap();
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "message"]);

    // The same session by its cookie, as a browser sends it.
    let cookie = cookie.split(';').next().unwrap();
    let by_cookie = app
        .client
        .get(app.url(&format!("/rooms/{code}/messages")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
}

fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers
}

#[tokio::test]
async fn without_joining_nothing_of_a_room_can_be_read_or_written() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    app.say(&code, "alice", "secret plans").await;
    let other = app.create_room().await;
    let elsewhere = app.token(&other, "mallory").await;
    let forged = "0123456789abcdef0123456789abcdef";
    for (token, who) in [
        (None, "no credential"),
        (Some(forged), "a guessed token"),
        (Some("alice"), "a name for a token"),
        (Some(elsewhere.as_str()), "a token of another room"),
    ] {
        let history = get(&app, &format!("/rooms/{code}/messages?since=0"), token).await;
        assert_unauthorized(history, &format!("history, {who}")).await;
        let stream = get(&app, &format!("/rooms/{code}/events"), token).await;
        assert_unauthorized(stream, &format!("stream, {who}")).await;
        let posted = post(
            &app,
            &format!("/rooms/{code}/messages"),
            token,
            json!({"name": "alice", "text": "forged"}),
        )
        .await;
        assert_unauthorized(posted, &format!("post, {who}")).await;
    }
    // A room that does not exist answers the same: a refusal tells nothing.
    let unknown = get(&app, "/rooms/ZZZZ/messages", None).await;
    assert_unauthorized(unknown, "an unknown room").await;
    let history = app.history(&code, "?since=0").await;
    let texts: Vec<&str> = history.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(texts, ["secret plans"], "nothing forged was kept");
}

#[tokio::test]
async fn a_sender_cannot_be_forged_by_body_by_second_join_or_by_lookalike() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    app.token(&code, "alice").await;
    let mallory = app.token(&code, "mallory").await;
    let path = format!("/rooms/{code}/messages");
    let as_alice = post(
        &app,
        &path,
        Some(&mallory),
        json!({"name": "alice", "text": "hi"}),
    )
    .await;
    assert_eq!(
        as_alice.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a body name is not believed"
    );
    let own = post(
        &app,
        &path,
        Some(&mallory),
        json!({"name": "Mallory", "text": "me"}),
    )
    .await;
    assert_eq!(
        own.status(),
        StatusCode::CREATED,
        "one's own name may be named"
    );

    for lookalike in [
        "alice",
        "Alice",
        "\u{430}lice",
        "alice\u{200b}",
        "ALICE ",
        "AIice",
        "a1ice",
        "alice\u{2800}",
        "al ice",
    ] {
        let response = app.join_as(&code, json!({"name": lookalike})).await;
        let status = response.status();
        assert!(
            status == StatusCode::CONFLICT || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{lookalike:?}: {status}"
        );
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{lookalike:?}"
        );
    }
    let response = app.join_as(&code, json!({"name": "alice"})).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("taken"), "{body}");
    // A participant cannot take a second name in the same room either.
    let second = post(
        &app,
        &format!("/rooms/{code}/join"),
        Some(&mallory),
        json!({"name": "bob"}),
    )
    .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);

    let history = app.history(&code, "?since=0").await;
    let senders: Vec<&str> = history
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["mallory"]);
}

#[tokio::test]
async fn join_refuses_what_it_cannot_keep_and_keeps_nothing_of_it() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    for (body, status) in [
        (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"name": "x".repeat(33)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "al\u{202e}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"name": 5}), StatusCode::BAD_REQUEST),
    ] {
        let response = app.join_as(&code, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        assert!(response.headers().get("set-cookie").is_none(), "{body}");
    }
    let unknown = app.join_as("ZZZZ", json!({"name": "al"})).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let limited = spawn_with(|c| {
        c.join_burst = 1.0;
        c.join_rate = 0.001;
    })
    .await;
    let room = limited.create_room().await;
    assert_eq!(
        limited.join_as(&room, json!({"name": "a"})).await.status(),
        StatusCode::CREATED
    );
    let over = limited.join_as(&room, json!({"name": "b"})).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
    assert!(
        app.history(&code, "?since=0").await.is_empty(),
        "no join was kept"
    );
}

#[tokio::test]
async fn a_name_stays_its_holders_until_they_leave_and_then_is_free() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    {
        // Her only stream closes; the name is still hers.
        let mut tab = app
            .stream_with(&format!("/rooms/{code}/events"), bearer(&alice))
            .await;
        tab.next_members().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let taken = app.join_as(&code, json!({"name": "alice"})).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let mut watcher = app.stream(&format!("/rooms/{code}/events")).await;
    watcher.next_members().await;
    let left = post(
        &app,
        &format!("/rooms/{code}/leave"),
        Some(&alice),
        json!({}),
    )
    .await;
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    let leave = watcher.next_history().await;
    assert_eq!(
        (leave.event.as_str(), leave.json()["name"].as_str()),
        ("leave", Some("alice"))
    );
    let history = get(&app, &format!("/rooms/{code}/messages"), Some(&alice)).await;
    assert_unauthorized(history, "after leaving").await;
    let again = post(
        &app,
        &format!("/rooms/{code}/leave"),
        Some(&alice),
        json!({}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "leaving twice");
    let newcomer = app.join_as(&code, json!({"name": "alice"})).await;
    assert_eq!(
        newcomer.status(),
        StatusCode::CREATED,
        "the name is free again"
    );
}

#[tokio::test]
async fn a_watcher_is_listed_and_never_announced_and_may_not_speak() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    let mut stream = app
        .stream_with(&format!("/rooms/{code}/events"), bearer(&alice))
        .await;
    let opening = next_members_frame(&mut stream).await;
    let alice_here = json!([{"name": "alice", "online": true}]);
    assert_eq!(
        opening,
        json!({"room": code, "members": alice_here, "watchers": []})
    );
    let bot = app.join(&code, "logbot", true).await;
    let mut frame = next_members_frame(&mut stream).await;
    while frame["watchers"] == json!([]) {
        frame = next_members_frame(&mut stream).await; // her stream's own news
    }
    assert_eq!(
        frame,
        json!({"room": code, "members": alice_here,
               "watchers": [{"name": "logbot", "online": false}]})
    );
    let said = post(
        &app,
        &format!("/rooms/{code}/messages"),
        Some(&bot),
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(said.status(), StatusCode::FORBIDDEN);
    let history = get(&app, &format!("/rooms/{code}/messages?since=0"), Some(&bot)).await;
    let history: Vec<Value> = history.json().await.unwrap();
    let names: Vec<&str> = history
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alice"],
        "only alice's join: the watcher is not announced"
    );
    let mut browser = app.browser();
    browser.enter("carol", &code, "join").await;
    let html = browser.room_page(&code).await;
    assert!(html.contains("logbot"), "the page shows who watches");
    let left = post(&app, &format!("/rooms/{code}/leave"), Some(&bot), json!({})).await;
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    loop {
        let frame = next_members_frame(&mut stream).await;
        if frame["watchers"] == json!([]) {
            break;
        }
    }
}

/// The next `members` frame, whole.
async fn next_members_frame(stream: &mut crate::helpers::Sse) -> Value {
    loop {
        let event = stream.next().await;
        if event.event == "members" {
            return event.json();
        }
    }
}

#[tokio::test]
async fn one_session_joins_many_rooms_and_switching_logs_out_of_none() {
    let app = spawn_app().await;
    let mut browser = app.browser();
    let first = browser.enter("al", "", "create").await;
    let second = browser.enter("al", "", "create").await;
    let third = app.create_room().await;
    browser.enter("albert", &third, "join").await;
    for code in [&first, &second, &third] {
        let page = browser.get(&format!("/rooms/{code}")).await;
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "{code} after joining the others"
        );
    }
    let page = browser.room_page(&third).await;
    assert!(
        page.contains(r#"data-me="albert""#),
        "each room keeps its own name"
    );
}

#[tokio::test]
async fn a_name_survives_a_restart_and_so_does_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(move |c| c.db = db).await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    app.restart().await;
    let history = get(
        &app,
        &format!("/rooms/{code}/messages?since=0"),
        Some(&alice),
    )
    .await;
    assert_eq!(history.status(), StatusCode::OK, "the token still works");
    let taken = app.join_as(&code, json!({"name": "alice"})).await;
    assert_eq!(
        taken.status(),
        StatusCode::CONFLICT,
        "and the name is still hers"
    );
    let said = post(
        &app,
        &format!("/rooms/{code}/messages"),
        Some(&alice),
        json!({"text": "back"}),
    )
    .await;
    assert_eq!(said.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_unused_session_ends_after_the_session_ttl_and_frees_its_names() {
    let app = spawn_with(|c| c.session_ttl = std::time::Duration::from_millis(300)).await;
    let code = app.create_room().await;
    let alice = app.token(&code, "alice").await;
    // Unused for three TTLs (any request with it would be a use).
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let path = format!("/rooms/{code}/messages");
    assert_unauthorized(get(&app, &path, Some(&alice)).await, "an ended session").await;
    let newcomer = app.join_as(&code, json!({"name": "alice"})).await;
    assert_eq!(newcomer.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_private_room_is_an_unknown_code_to_anyone_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db").to_str().unwrap().to_string();
    let mut app = spawn_with(move |c| c.db = db).await;
    let created = post(&app, "/rooms", None, json!({"private": true})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let code = created["code"].as_str().unwrap().to_string();
    let invite = created["invite"].as_str().unwrap().to_string();
    let key = invite
        .strip_prefix(&format!("/join/{code}-"))
        .unwrap_or_else(|| panic!("{invite}"))
        .to_string();
    assert!(key.len() * 4 >= 96, "at least 96 bits: {key}");
    let open: Value = post(&app, "/rooms", None, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        open.get("invite").is_none(),
        "an open room's invite is its code"
    );

    // What an unknown code answers, said for this code.
    let unknown = "ZZZZ";
    let as_here = |text: String| text.replace(unknown, &code);
    let unknown_join = app.join_as(unknown, json!({"name": "eve"})).await;
    let unknown_status = unknown_join.status();
    let unknown_body = as_here(unknown_join.text().await.unwrap());
    let unknown_page = app.browser().get(&format!("/rooms/{unknown}")).await;
    let unknown_page = (
        unknown_page.status(),
        as_here(unknown_page.text().await.unwrap()),
    );
    for body in [
        json!({"name": "eve"}),
        json!({"name": "eve", "key": "0".repeat(key.len())}),
        json!({"name": "eve", "key": ""}),
    ] {
        app.restart().await; // and the key is kept across restarts
        let guess = app.join_as(&code, body.clone()).await;
        assert_eq!(guess.status(), unknown_status, "{body}");
        assert_eq!(guess.text().await.unwrap(), unknown_body, "{body}");
    }
    let page = app.browser().get(&format!("/rooms/{code}")).await;
    assert_eq!((page.status(), page.text().await.unwrap()), unknown_page);
    let mut guesser = app.browser();
    let form = guesser
        .submit("/", &[("name", "eve"), ("code", &code), ("action", "join")])
        .await;
    assert_eq!(form.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(guesser.cookie.is_none());

    // With the key: the invite page carries it, and joining works.
    let mut friend = app.browser();
    let invite_page = friend.get(&invite).await.text().await.unwrap();
    assert!(invite_page.contains(&format!(r#"name="key" value="{key}""#)));
    let joined = friend
        .submit(
            "/",
            &[
                ("name", "fay"),
                ("code", &code),
                ("key", &key),
                ("action", "join"),
            ],
        )
        .await;
    assert_eq!(joined.status(), StatusCode::SEE_OTHER);
    let page = friend.room_page(&code).await;
    assert!(
        page.contains(&invite),
        "a participant sees the invite with its key"
    );
    let bot = app.join_as(&code, json!({"name": "bot", "key": key})).await;
    assert_eq!(bot.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_device_link_signs_another_browser_in_once() {
    let app = spawn_app().await;
    let mut laptop = app.browser();
    let code = laptop.enter("alice", "", "create").await;
    let cookie = laptop.cookie.clone().unwrap();
    let made = app
        .client
        .post(app.url("/device"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["expires_in"], 600);
    let link = made["link"].as_str().unwrap().to_string();
    assert!(link.len() >= "/device/".len() + 32, "{link}");
    let stranger = app.client.post(app.url("/device")).send().await.unwrap();
    assert_eq!(
        stranger.status(),
        StatusCode::UNAUTHORIZED,
        "no session, no link"
    );

    // Opening the link spends nothing; another site cannot use it for us.
    let mut phone = app.browser();
    let page = phone.get(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(&format!(r#"action="{link}""#)));
    let forged = app
        .client
        .post(app.url(&link))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let used = phone.submit(&link, &[]).await;
    assert_eq!(used.status(), StatusCode::SEE_OTHER);
    assert_eq!(phone.cookie, laptop.cookie, "the same session");
    let page = phone.room_page(&code).await;
    assert!(page.contains(r#"data-me="alice""#), "in the room, as alice");

    let mut thief = app.browser();
    let again = thief.submit(&link, &[]).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "once only");
    assert!(thief.cookie.is_none());
    let made_up = thief
        .submit("/device/0123456789abcdef0123456789abcdef", &[])
        .await;
    assert_eq!(made_up.status(), StatusCode::NOT_FOUND);
}

/// Leaving one's last room keeps the session: joining again, by the same
/// token, is the same session (on every backend alike).
pub(crate) async fn a_session_outlives_its_last_room(app: &crate::helpers::TestApp) {
    let (first, second) = (app.create_room().await, app.create_room().await);
    let token = app.join(&first, "ann", false).await;
    let left = app
        .client
        .post(app.url(&format!("/rooms/{first}/leave")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    let again = app
        .client
        .post(app.url(&format!("/rooms/{second}/join")))
        .bearer_auth(&token)
        .json(&json!({"name": "ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["token"], token.as_str(), "the same session");
}

#[tokio::test]
async fn leaving_the_last_room_keeps_the_session() {
    a_session_outlives_its_last_room(&spawn_app().await).await;
}
