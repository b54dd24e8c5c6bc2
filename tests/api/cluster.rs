//! Several nodes sharing rooms through Redis (`--redis`): each test starts
//! its own redis-server (Debian's package) on a free port and two or three
//! roomcast nodes against it.
//!
//! Without redis-server these tests print SKIPPED and pass, unless
//! ROOMCAST_REQUIRE_REDIS=1 (as in CI), which makes a missing server fail.

use std::time::Duration;

use crate::helpers::{eventually, spawn_with, Process, Sse, TestApp};
use crate::redis::Redis;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A node on `redis`.
async fn node(redis: &Redis) -> TestApp {
    node_with(redis, |_| {}).await
}

/// A node on `redis`, with `tweak` to its flags too.
async fn node_with(redis: &Redis, tweak: impl FnOnce(&mut roomcast::Config)) -> TestApp {
    let url = redis.url();
    spawn_with(move |config| {
        config.redis = Some(url);
        tweak(config);
    })
    .await
}

/// A stream on `path` that resumes after `last` the way a browser does.
async fn resume(app: &TestApp, path: &str, last: &str) -> Sse {
    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", HeaderValue::from_str(last).unwrap());
    app.stream_with(path, headers).await
}

/// The texts of the next `n` messages on `stream`, checking their ids run
/// on from `after` with no gap.
async fn texts(stream: &mut Sse, after: u64, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    let mut expected = after + 1;
    while texts.len() < n {
        let event = stream.next_history().await;
        assert_eq!(event.id, Some(expected.to_string()), "{event:?}");
        expected += 1;
        if event.event == "message" {
            texts.push(event.json()["text"].as_str().unwrap().to_string());
        }
    }
    texts
}

#[tokio::test]
async fn a_message_posted_on_any_node_reaches_every_node_in_order() {
    let Some(redis) = Redis::start() else { return };
    let nodes = [node(&redis).await, node(&redis).await, node(&redis).await];
    let code = nodes[0].create_room().await;
    nodes[0].token(&code, "al").await; // al's join is id 1
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.stream(&format!("/rooms/{code}/events")).await;
        assert_eq!(stream.status, StatusCode::OK);
        stream.next_members().await;
        streams.push(stream);
    }
    let sent: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    for (i, text) in sent.iter().enumerate() {
        let posted = nodes[i % 3].say(&code, "al", text).await;
        assert_eq!(
            posted["id"],
            i as u64 + 2,
            "ids are plain integers in order"
        );
    }
    for stream in &mut streams {
        assert_eq!(texts(stream, 1, sent.len()).await, sent);
    }
    for node in &nodes {
        let history = node.whole_history(&code).await;
        assert_eq!(
            history.len(),
            sent.len() + 1,
            "every node has the same history"
        );
        assert_eq!(history[30]["text"], "m29");
    }
}

#[tokio::test]
async fn a_room_made_on_one_node_is_known_to_all_and_unknown_codes_are_not() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let code = a.create_room().await;
    let found = b
        .client
        .get(b.url(&format!("/rooms/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), StatusCode::SEE_OTHER, "there, to join");
    let missing = b.join_as("ZZZZ", json!({"name": "al"})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let empty = b.post_json(&code, json!({"name": "al", "text": " "})).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let history = b.history(&code, "").await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join"], "the refused post changed nothing");
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_no_gap_and_no_repeat() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let code = a.create_room().await;
    a.token(&code, "al").await; // al's join is id 1
    let mut first = a.stream(&format!("/rooms/{code}/events")).await;
    for i in 0..5 {
        a.say(&code, "al", &format!("before {i}")).await;
    }
    texts(&mut first, 1, 5).await;
    drop(first); // The client goes away after id 6...
    for i in 0..5 {
        b.say(&code, "al", &format!("away {i}")).await;
    }
    // ...and comes back through the other node.
    let mut again = resume(&b, &format!("/rooms/{code}/events"), "6").await;
    let expected: Vec<String> = (0..5).map(|i| format!("away {i}")).collect();
    assert_eq!(texts(&mut again, 6, 5).await, expected);
    a.say(&code, "al", "live").await;
    assert_eq!(texts(&mut again, 11, 1).await, ["live"]);
}

#[tokio::test]
async fn who_is_in_a_room_is_the_same_on_every_node() {
    let Some(redis) = Redis::start() else { return };
    let nodes = [node(&redis).await, node(&redis).await, node(&redis).await];
    let code = nodes[0].create_room().await;
    let mut watcher = nodes[2].stream(&format!("/rooms/{code}/events")).await;
    assert!(watcher.next_members().await.is_empty());
    // bo joins on node A and reads, posts and leaves on node B.
    let bo = nodes[0].token(&code, "bo").await;
    let join = watcher.next_history().await;
    assert_eq!(
        (join.event.as_str(), join.json()["name"].as_str()),
        ("join", Some("bo"))
    );
    assert_eq!(watcher.next_members().await, ["bo"]);
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {bo}").parse().unwrap());
    let mut tab_b = nodes[1]
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    assert_eq!(tab_b.next_members().await, ["bo"]);
    let taken = nodes[1].join_as(&code, json!({"name": "BO"})).await;
    assert_eq!(
        taken.status(),
        StatusCode::CONFLICT,
        "a name is held on every node"
    );
    let said = nodes[1]
        .client
        .post(nodes[1].url(&format!("/rooms/{code}/messages")))
        .bearer_auth(&bo)
        .json(&json!({"text": "from B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), StatusCode::CREATED);
    let said: Value = said.json().await.unwrap();
    assert_eq!(said["name"], "bo");
    assert_eq!(watcher.next_history().await.json()["text"], "from B");
    let left = nodes[1]
        .client
        .post(nodes[1].url(&format!("/rooms/{code}/leave")))
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    let leave = watcher.next_history().await;
    assert_eq!(
        (leave.event.as_str(), leave.json()["name"].as_str()),
        ("leave", Some("bo"))
    );
    assert!(watcher.next_members().await.is_empty());
    tab_b.until_end().await; // bo's stream on node B ended with the leave
    let gone = nodes[0]
        .client
        .get(nodes[0].url(&format!("/rooms/{code}/messages")))
        .bearer_auth(&bo)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::UNAUTHORIZED,
        "out of the room on every node"
    );
}

#[tokio::test]
async fn sessions_and_names_hold_on_every_node() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut ann = a.browser();
    let code = ann.enter("ann", "", "create").await;
    // The same cookie on the other node: ann's room page, under her name.
    let cookie = ann.cookie.clone();
    let mut on_b = b.browser();
    on_b.cookie = cookie;
    let page = on_b.room_page(&code).await;
    assert!(page.contains("ann"), "{page}");
    let mut stream = on_b.stream(&code, 0).await;
    assert_eq!(stream.next_history().await.json()["name"], "ann");
    // Nobody else can take her name on any node.
    let mut other = b.browser();
    let taken = other
        .submit("/", &[("name", "ann"), ("code", &code), ("action", "join")])
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let lookalike = other
        .submit(
            "/",
            &[("name", "\u{430}NN"), ("code", &code), ("action", "join")],
        )
        .await;
    assert_eq!(lookalike.status(), StatusCode::CONFLICT, "a lookalike");
    // Her posts carry her name without giving it.
    let response = on_b
        .submit(&format!("/rooms/{code}/messages"), &[("text", "hello")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(a.history(&code, "").await[1]["name"], "ann");
}

#[tokio::test]
async fn redis_restarting_mid_conversation_loses_nothing_accepted() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let code = a.create_room().await;
    let al = a.token(&code, "al").await; // ids 1 and 2: the joins
    let bo = b.token(&code, "bo").await;
    let mut on_a = a.stream(&format!("/rooms/{code}/events")).await;
    let mut on_b = b.stream(&format!("/rooms/{code}/events")).await;
    a.say(&code, "al", "before").await;

    redis.stop();
    let refused = b
        .post_json(&code, json!({"name": "bo", "text": "lost?"}))
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    eventually("node A reports Redis down", || async {
        let health = a.client.get(a.url("/healthz")).send().await.unwrap();
        health.status() == StatusCode::SERVICE_UNAVAILABLE
            && health.json::<Value>().await.unwrap()["redis"] == "down"
    })
    .await;
    let metrics = a.client.get(a.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("\nroomcast_redis_up 0\n"), "{metrics}");

    redis.run();
    for (node, token, text) in [(&b, &bo, "after"), (&a, &al, "and more")] {
        let url = node.url(&format!("/rooms/{code}/messages"));
        let body = json!({ "text": text });
        eventually("the node takes posts again", || async {
            let request = node.client.post(&url).bearer_auth(token).json(&body);
            let response = request.send().await.unwrap();
            response.status() == StatusCode::CREATED
        })
        .await;
    }
    // The streams stayed open through it all and missed nothing.
    for stream in [&mut on_a, &mut on_b] {
        assert_eq!(texts(stream, 2, 3).await, ["before", "after", "and more"]);
    }
    let health = a.client.get(a.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_node_killed_hard_loses_its_clients_to_another_with_no_gap() {
    let Some(redis) = Redis::start() else { return };
    let flags = ["--max-streams-per-visitor", "1000"];
    let mut doomed = Process::start(&[&["--redis", &redis.url()][..], &flags].concat());
    let survivor = node(&redis).await;
    let code = survivor.create_room().await;
    let client = &survivor.client;
    // di follows on the doomed node and will come back.
    let di = survivor.token(&code, "di").await;
    let events = format!("{}/rooms/{code}/events", doomed.base);
    let on_doomed = client.get(&events).bearer_auth(&di).send().await.unwrap();
    assert_eq!(on_doomed.status(), StatusCode::OK);
    let mut watcher = survivor
        .stream(&format!("/rooms/{code}/events?since=0"))
        .await;
    assert_eq!(watcher.next_history().await.event, "join");
    for i in 0..3 {
        survivor.say(&code, "al", &format!("m{i}")).await;
    }
    doomed.child.kill().unwrap(); // SIGKILL: no goodbye to Redis
    doomed.child.wait().unwrap();
    drop(on_doomed);
    // di's browser reconnects to the other node from the last id it had
    // (its join), still di.
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {di}").parse().unwrap());
    headers.insert("last-event-id", HeaderValue::from_static("1"));
    let mut back = survivor
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    survivor.say(&code, "al", "m3").await;
    // al's join is id 2, so the messages are 3 to 6.
    let _al_join = back.next_history().await;
    assert_eq!(texts(&mut back, 2, 4).await, ["m0", "m1", "m2", "m3"]);
    let members = survivor.history(&code, "?since=0").await;
    assert_eq!(
        members.len(),
        6,
        "two joins and four messages, nothing lost"
    );
}

#[tokio::test]
async fn a_frame_that_is_not_history_reaches_every_node_and_is_never_replayed() {
    use roomcast::client::VisitorKey;
    use roomcast::model::Update;
    use roomcast::rooms::redis::client::Redis as RedisClient;
    use roomcast::rooms::Registry;
    use roomcast::Config;

    let Some(redis) = Redis::start() else { return };
    let settings = Config::default().settings(|| 100);
    let registry = || async {
        let client = RedisClient::connect(&redis.url(), settings.clone())
            .await
            .unwrap();
        Registry::open_redis(settings.clone(), client)
    };
    let (a, b) = (registry().await, registry().await);
    let (_stop, shutdown) = roomcast::shutdown::channel();
    let _tasks = [a.spawn_tasks(shutdown.clone()), b.spawn_tasks(shutdown)];
    let someone = VisitorKey::address(std::net::Ipv4Addr::LOCALHOST.into());
    let code = a.create_room(someone).await.unwrap();
    let mut on_b = b.subscribe(&code, None, someone).await.unwrap();
    // Node B's subscription to the frames may not be in place yet: send
    // until one arrives.
    let mut got = None;
    for _ in 0..100 {
        a.send_frame(&code, "typing", r#"{"name":"al"}"#, None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(Update::Frame(frame, None)) = on_b.openings[0].1.updates.try_recv() {
            got = Some(frame);
            break;
        }
    }
    let frame = got.expect("the frame reached the other node");
    assert_eq!(&frame[..], b"event: typing\ndata: {\"name\":\"al\"}\n\n");
    let resumed = b.subscribe(&code, Some(0), someone).await.unwrap();
    assert!(resumed.openings[0].1.backlog.is_empty(), "never replayed");
}

#[tokio::test]
async fn a_private_room_needs_its_key_on_every_node() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let created = a
        .client
        .post(a.url("/rooms"))
        .json(&json!({"private": true}))
        .send()
        .await
        .unwrap();
    let created: Value = created.json().await.unwrap();
    let code = created["code"].as_str().unwrap();
    let invite = created["invite"].as_str().unwrap();
    let key = invite.rsplit('-').next().unwrap();
    let unknown = b.join_as("ZZZZ", json!({"name": "eve"})).await;
    let unknown = unknown.text().await.unwrap().replace("ZZZZ", code);
    for body in [
        json!({"name": "eve"}),
        json!({"name": "eve", "key": "f00d"}),
    ] {
        let guess = b.join_as(code, body.clone()).await;
        assert_eq!(guess.status(), StatusCode::NOT_FOUND, "{body}");
        assert_eq!(guess.text().await.unwrap(), unknown, "{body}");
    }
    let page = b
        .client
        .get(b.url(&format!("/rooms/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let joined = b.join_as(code, json!({"name": "fay", "key": key})).await;
    assert_eq!(joined.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_device_link_made_on_one_node_works_once_on_another() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut laptop = a.browser();
    let code = laptop.enter("ann", "", "create").await;
    let made = a
        .client
        .post(a.url("/device"))
        .header("cookie", laptop.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    let made: Value = made.json().await.unwrap();
    let link = made["link"].as_str().unwrap();
    let mut phone = b.browser();
    assert_eq!(
        phone.submit(link, &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(phone.room_page(&code).await.contains(r#"data-me="ann""#));
    let mut thief = b.browser();
    assert_eq!(
        thief.submit(link, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_quiet_room_with_a_stream_open_outlives_the_room_ttl_in_redis() {
    let Some(redis) = Redis::start() else { return };
    let app = node_with(&redis, |c| c.room_ttl = Duration::from_millis(300)).await;
    let code = app.create_room().await;
    app.say(&code, "al", "before the quiet").await;
    let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
    stream.next_members().await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // four TTLs of quiet
    app.say(&code, "al", "still here").await;
    assert_eq!(stream.next_message().await.json()["text"], "still here");
    let history = app.history(&code, "?since=0").await;
    assert_eq!(history.len(), 3, "al's join and both messages are kept");
}

#[tokio::test]
async fn names_filed_under_an_older_key_are_filed_again_at_start() {
    use redis::AsyncCommands;

    let Some(redis) = Redis::start() else { return };
    let a = node(&redis).await;
    let code = a.create_room().await;
    let token = a.join(&code, "B0b", false).await;
    // As an older version filed it: under another key, named so in the
    // session too, and no mark that names are up to date.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let names = format!("roomcast:{{{code}}}:names");
    let held: Vec<(String, String)> = raw.hgetall(&names).await.unwrap();
    let [(key, value)] = &held[..] else {
        panic!("{held:?}")
    };
    let session = format!("roomcast:session:{}", value.split('\t').next().unwrap());
    let _: () = raw.hdel(&names, key).await.unwrap();
    let _: () = raw.hset(&names, "b0b-old", value).await.unwrap();
    let mine: String = raw.hget(&session, &code).await.unwrap();
    let mine = mine.replace(&format!("\t{key}\t"), "\tb0b-old\t");
    let _: () = raw.hset(&session, &code, mine).await.unwrap();
    let _: () = raw.del("roomcast:names-key").await.unwrap();

    // A node that starts now files it again: the lookalike is refused.
    let b = node(&redis).await;
    let lookalike = b.join_as(&code, json!({"name": "bob"})).await;
    assert_eq!(lookalike.status(), StatusCode::CONFLICT, "a lookalike");
    // And leaving frees it (the session names the new key).
    let left = b
        .client
        .post(b.url(&format!("/rooms/{code}/leave")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    let free = b.join_as(&code, json!({"name": "bob"})).await;
    assert_eq!(free.status(), StatusCode::CREATED, "free again");
}

#[tokio::test]
async fn redis_stores_a_post_only_from_a_member_of_the_room_at_that_moment() {
    use roomcast::client::VisitorKey;
    use roomcast::model::{Name, Text};
    use roomcast::rooms::redis::client::Redis as RedisClient;
    use roomcast::rooms::{Registry, RoomError};
    use roomcast::session::{Participation, SessionId};
    use roomcast::Config;

    let Some(redis) = Redis::start() else { return };
    let settings = Config::default().settings(|| 100);
    let client = RedisClient::connect(&redis.url(), settings.clone())
        .await
        .unwrap();
    let registry = Registry::open_redis(settings, client);
    let someone = VisitorKey::address(std::net::Ipv4Addr::LOCALHOST.into());
    let code = registry.create_room(someone).await.unwrap();
    let part = |name: &str, watch| Participation {
        name: Name::parse(name).unwrap(),
        watch,
    };
    let (al, _) = registry
        .join(&code, None, &part("al", false), None, someone)
        .await
        .unwrap();
    let (eye, _) = registry
        .join(&code, None, &part("eye", true), None, someone)
        .await
        .unwrap();
    let text = Text::parse("hi").unwrap();
    let posted = registry
        .post(&code, al, &text, None, someone)
        .await
        .unwrap();
    assert_eq!(posted.event.name, "al", "named by the session");
    registry.leave(al, &code).await.unwrap();
    for who in [al, eye, SessionId::random()] {
        let refused = registry.post(&code, who, &text, None, someone).await;
        assert_eq!(refused.unwrap_err(), RoomError::NotParticipant);
    }
    let history = registry.history(&code, Some(0), 10).await.unwrap();
    let messages: Vec<_> = history.iter().filter(|e| e.event.text.is_some()).collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].json, posted.json,
        "the answer is what was stored"
    );
}

#[tokio::test]
async fn a_join_whose_reply_redis_held_back_is_answered_as_made() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis).await;
    let code = a.create_room().await;
    // Redis takes the join but answers only after the node stopped
    // waiting (its response timeout is 2 s).
    redis.freeze(true);
    let joining = tokio::spawn({
        let (client, url) = (a.client.clone(), a.url(&format!("/rooms/{code}/join")));
        async move {
            let body = json!({"name": "ann"});
            client.post(url).json(&body).send().await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.freeze(false);
    let joined = joining.await.unwrap();
    assert_eq!(joined.status(), StatusCode::CREATED, "settled, not 503");
    let joined: Value = joined.json().await.unwrap();
    let token = joined["token"].as_str().unwrap();
    let said = a
        .client
        .post(a.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(token)
        .json(&json!({"text": "I am in"}))
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), StatusCode::CREATED, "the name is ann's");
}

#[tokio::test]
async fn leaving_the_last_room_keeps_the_session_with_redis_too() {
    let Some(redis) = Redis::start() else { return };
    let app = node(&redis).await;
    crate::participants::a_session_outlives_its_last_room(&app).await;
}

#[tokio::test]
async fn the_members_frame_from_redis_is_byte_for_byte_the_one_rust_makes() {
    use roomcast::model::{members_json, Name, Names, Present};

    let Some(redis) = Redis::start() else { return };
    let app = node(&redis).await;
    let code = app.create_room().await;
    let (members, watchers) = (["Zoe", "adam", "a/b", "\u{c9}mile"], ["Yann/", "bea"]);
    for name in members {
        app.join(&code, name, false).await;
    }
    for name in watchers {
        app.join(&code, name, true).await;
    }
    let mut stream = app.stream(&format!("/rooms/{code}/events?name=Zoe")).await;
    // Zoe's stream is open: she is online, everyone else away.
    let sorted = |names: &[&str]| {
        let mut names: Vec<Present> = (names.iter())
            .map(|n| Present {
                name: Name::parse(n).unwrap(),
                online: *n == "Zoe",
            })
            .collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        names
    };
    let expected = members_json(
        &code.parse().unwrap(),
        &Names {
            members: sorted(&members),
            watchers: sorted(&watchers),
        },
    );
    // The opening frame is the node's; the one after a join is the
    // script's (and so is the one her stream's opening sends round).
    app.join(&code, "late/comer", true).await;
    let expected_after = members_json(
        &code.parse().unwrap(),
        &Names {
            members: sorted(&members),
            watchers: sorted(&["Yann/", "bea", "late/comer"]),
        },
    );
    let mut seen = Vec::new();
    while seen.last() != Some(&expected_after.to_string()) {
        let event = stream.next().await;
        if event.event == "members" {
            seen.push(event.data);
        }
    }
    assert_eq!(seen[0], *expected);
    for frame in &seen {
        assert!(*frame == *expected || *frame == *expected_after, "{frame}");
    }
}

#[tokio::test]
async fn a_session_redis_let_expire_is_announced_gone_and_its_streams_end() {
    let Some(redis) = Redis::start() else { return };
    let app = node_with(&redis, |c| c.session_ttl = Duration::from_secs(1)).await;
    let code = app.create_room().await;
    app.join(&code, "ann", false).await;
    let mut anns = app.stream(&format!("/rooms/{code}/events?name=ann")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The next look at the room finds her session gone: her name is free,
    // her leave is told, and her stream ends.
    app.join(&code, "ann", false).await;
    while anns.next_seen().await.is_some() {} // ends (next_seen fails a hang)
                                              // Her leave reaches the log; her own stream may end before it comes
                                              // down (the end travels on pub/sub, the leave through the log).
    let history = app.whole_history(&code).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["join", "leave", "join"], "{history:?}");
}

#[tokio::test]
async fn a_crowd_is_announced_about_thirty_a_minute_on_every_node() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let code = a.create_room().await;
    for i in 0..40 {
        let on = if i % 2 == 0 { &a } else { &b };
        on.join(&code, &format!("p{i}"), false).await;
    }
    let history = b.whole_history(&code).await;
    let joins = history.iter().filter(|e| e["kind"] == "join").count();
    assert_eq!(joins, 30, "past the room's notices, joins are silent");
    let mut stream = b.stream(&format!("/rooms/{code}/events?name=p1")).await;
    assert_eq!(
        stream.next_members().await.len(),
        40,
        "but everyone is listed"
    );
}

#[tokio::test]
async fn a_node_older_than_the_names_in_redis_refuses_joins_rather_than_file_them_apart() {
    use redis::AsyncCommands;

    let Some(redis) = Redis::start() else { return };
    let a = node(&redis).await;
    let code = a.create_room().await;
    // A newer node has filed the names under a newer key since.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = raw.set("roomcast:names-key", 99).await.unwrap();
    let refused = a.join_as(&code, json!({"name": "ann"})).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let _: () = raw.set("roomcast:names-key", 3).await.unwrap();
    let joined = a.join_as(&code, json!({"name": "ann"})).await;
    assert_eq!(joined.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_wrong_key_to_a_private_room_ends_none_of_its_streams() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis).await;
    let created = a
        .client
        .post(a.url("/rooms"))
        .json(&json!({"private": true}))
        .send()
        .await
        .unwrap();
    let created: Value = created.json().await.unwrap();
    let code = created["code"].as_str().unwrap().to_string();
    let key = created["invite"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    let joined = a.join_as(&code, json!({"name": "fay", "key": key})).await;
    let token: Value = joined.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert("authorization", bearer);
    let mut stream = a
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    stream.next_members().await;
    // Guesses with wrong keys: answered as an unknown room…
    for guess in ["", "f00d"] {
        let refused = a.join_as(&code, json!({"name": "eve", "key": guess})).await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }
    // …and fay's stream goes on.
    let said = a
        .client
        .post(a.url(&format!("/rooms/{code}/messages")))
        .bearer_auth(&token)
        .json(&json!({"text": "still here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), StatusCode::CREATED);
    assert_eq!(stream.next_message().await.json()["text"], "still here");
}
