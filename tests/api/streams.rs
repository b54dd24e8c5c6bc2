//! The SSE stream: framing, live delivery, resume, and fan-out.

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_with, Sse};

fn ids(events: &[crate::helpers::SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

async fn history_events(stream: &mut Sse, n: usize) -> Vec<crate::helpers::SseEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(stream.next_history().await);
    }
    events
}

#[tokio::test]
async fn streams_have_the_sse_headers_and_no_compression() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let mut headers = HeaderMap::new();
    headers.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
    let stream = app
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert!(stream.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-cache"));
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert!(stream.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn every_event_has_an_id_a_kind_and_one_line_of_json() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let mut stream = app
        .stream(&format!("/rooms/{code}/events?name=alice&since=0"))
        .await;
    assert_eq!(stream.next_history().await.event, "join");
    let members = stream.next_members().await;
    assert_eq!(members, vec!["alice"]);
    let posted = app.say(&code, "bob", "hello").await;
    assert_eq!(
        stream.next_history().await.json()["name"],
        "bob",
        "bob's join"
    );
    let event = stream.next_history().await;
    assert_eq!(event.event, "message");
    assert_eq!(event.id.as_deref(), Some("3"));
    assert_eq!(event.json(), posted);
    assert!(!event.data.contains('\n'));
}

#[tokio::test]
async fn two_clients_in_a_room_see_each_other_and_rooms_are_isolated() {
    let app = spawn_app().await;
    let room = app.create_room().await;
    let other = app.create_room().await;
    let mut alice = app
        .stream(&format!("/rooms/{room}/events?name=alice"))
        .await;
    let mut bob = app.stream(&format!("/rooms/{room}/events?name=bob")).await;
    let mut elsewhere = app
        .stream(&format!("/rooms/{other}/events?name=carol&since=0"))
        .await;
    assert_eq!(elsewhere.next_history().await.event, "join");

    app.say(&room, "alice", "hi bob").await;
    app.say(&room, "bob", "hi alice").await;
    for stream in [&mut alice, &mut bob] {
        let mut texts = Vec::new();
        while texts.len() < 2 {
            let event = stream.next_history().await;
            if event.event == "message" {
                texts.push(event.json()["text"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(texts, vec!["hi bob", "hi alice"]);
    }
    app.say(&other, "carol", "only here").await;
    let event = elsewhere.next_history().await;
    assert_eq!(
        event.json()["text"],
        "only here",
        "nothing from the other room came first"
    );
    assert_eq!(event.json()["room"], other.as_str());
}

#[tokio::test]
async fn resume_by_last_event_id_replays_only_what_was_missed() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    for i in 1..=5 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", HeaderValue::from_static("2"));
    let mut stream = app
        .stream_with(&format!("/rooms/{code}/events"), headers)
        .await;
    let replayed = history_events(&mut stream, 3).await;
    assert_eq!(ids(&replayed), vec![3, 4, 5]);
    app.say(&code, "al", "m6").await;
    let live = stream.next_history().await;
    assert_eq!(
        live.id.as_deref(),
        Some("6"),
        "live after replay, nothing twice"
    );
}

#[tokio::test]
async fn resume_by_since_and_since_zero_replays_all() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    for i in 1..=4 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    let mut all = app.stream(&format!("/rooms/{code}/events?since=0")).await;
    assert_eq!(ids(&history_events(&mut all, 4).await), vec![1, 2, 3, 4]);
    let mut some = app.stream(&format!("/rooms/{code}/events?since=3")).await;
    assert_eq!(ids(&history_events(&mut some, 1).await), vec![4]);
}

#[tokio::test]
async fn last_event_id_wins_over_since_and_garbage_is_ignored() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    for i in 1..=4 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    // A browser reconnecting on its own keeps the URL (since=1) and adds
    // the header with the last id it saw.
    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", HeaderValue::from_static("3"));
    let mut stream = app
        .stream_with(&format!("/rooms/{code}/events?since=1"), headers)
        .await;
    assert_eq!(ids(&history_events(&mut stream, 1).await), vec![4]);

    let mut headers = HeaderMap::new();
    headers.insert("last-event-id", HeaderValue::from_static("not-a-number"));
    let mut stream = app
        .stream_with(&format!("/rooms/{code}/events?since=2"), headers)
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(ids(&history_events(&mut stream, 2).await), vec![3, 4]);
}

#[tokio::test]
async fn a_stream_without_a_resume_point_starts_live() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    app.say(&code, "al", "before").await;
    let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
    stream.next_members().await;
    app.say(&code, "al", "after").await;
    assert_eq!(stream.next_history().await.json()["text"], "after");
}

#[tokio::test]
async fn resume_older_than_history_says_what_is_gone() {
    let app = spawn_with(|c| c.history = 3).await;
    let code = app.create_room().await;
    for i in 1..=10 {
        app.say(&code, "al", &format!("m{i}")).await;
    }
    let mut stream = app.stream(&format!("/rooms/{code}/events?since=1")).await;
    let gap = stream.next().await;
    assert_eq!(gap.event, "gap");
    // al's join is 1, the messages 2 to 11, and the newest 3 are kept.
    assert_eq!(
        gap.json(),
        serde_json::json!({"room": code, "from": 2, "to": 8})
    );
    assert_eq!(ids(&history_events(&mut stream, 3).await), vec![9, 10, 11]);
}

#[tokio::test]
async fn user_text_cannot_forge_sse_fields() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let mut stream = app.stream(&format!("/rooms/{code}/events?since=0")).await;
    let nasty = [
        "a lone CR\revent: leave\rid: 999\rdata: {}\r\r",
        "LF\n\nevent: join\nid: 998\ndata: x\n\n",
        "CRLF\r\n\r\nid: 997\r\n: comment\r\n",
        "retry: 1\u{0}data: nul",
        "\u{2028}\u{2029}\u{85} unicode line separators",
    ];
    for text in nasty {
        app.say(&code, "mallory", text).await;
    }
    assert_eq!(stream.next_history().await.event, "join", "mallory's");
    for (i, text) in nasty.iter().enumerate() {
        let event = stream.next_history().await;
        assert_eq!(event.event, "message");
        assert_eq!(event.id, Some((i + 2).to_string()));
        assert_eq!(event.json()["text"], *text, "arrives exactly as sent");
    }
    app.say(&code, "al", "after").await;
    let event = stream.next_history().await;
    assert_eq!(event.id.as_deref(), Some("7"), "no forged event slipped in");
}

#[tokio::test]
async fn a_hundred_subscribers_get_fifty_messages_each_complete_and_in_order() {
    const SUBSCRIBERS: usize = 100;
    const MESSAGES: u64 = 50;
    let app = spawn_app().await;
    let code = app.create_room().await;
    let mut tokens = Vec::new();
    for p in 0..5 {
        tokens.push(app.token(&code, &format!("p{p}")).await);
    }
    let mut streams = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
        stream.next_members().await;
        streams.push(stream);
    }
    let posters: Vec<_> = (0..5)
        .map(|p| {
            let client = app.client.clone();
            let url = app.url(&format!("/rooms/{code}/messages"));
            let token = tokens[p].clone();
            tokio::spawn(async move {
                for i in 0..MESSAGES / 5 {
                    let body = serde_json::json!({"text": format!("{p}:{i}")});
                    let request = client.post(&url).bearer_auth(&token).json(&body);
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await.unwrap();
    }
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let events = history_events(&mut stream, MESSAGES as usize).await;
                ids(&events)
            })
        })
        .collect();
    for reader in readers {
        // The five joins came first.
        assert_eq!(
            reader.await.unwrap(),
            (6..=MESSAGES + 5).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let app = spawn_with(|c| c.keep_alive = std::time::Duration::from_millis(100)).await;
    let code = app.create_room().await;
    let mut stream = app.stream(&format!("/rooms/{code}/events")).await;
    stream.next_comment().await;
    stream.next_comment().await;
}

#[tokio::test]
async fn a_crowd_coming_and_going_closes_no_stream_and_floods_neither_frames_nor_notices() {
    let app = crate::helpers::spawn_app().await;
    let code = app.create_room().await;
    let mut stream = app.stream(&format!("/rooms/{code}/events?name=al")).await;
    stream.next_members().await; // the opening
                                 // 250 people join and leave, all at once: 500 changes of the roster.
    let cycles = (0..250).map(|i| {
        let (client, base, code) = (app.client.clone(), app.url("/"), code.clone());
        tokio::spawn(async move {
            let joined = client
                .post(format!("{base}rooms/{code}/join"))
                .json(&serde_json::json!({"name": format!("p{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(joined.status(), reqwest::StatusCode::CREATED);
            let token: serde_json::Value = joined.json().await.unwrap();
            let token = token["token"].as_str().unwrap().to_string();
            let left = client
                .post(format!("{base}rooms/{code}/leave"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(left.status(), reqwest::StatusCode::NO_CONTENT);
        })
    });
    for cycle in cycles.collect::<Vec<_>>() {
        cycle.await.unwrap();
    }
    app.say(&code, "al", "after the crowd").await;
    let (mut members_frames, mut notices) = (0, 0);
    loop {
        let event = stream.next().await; // fails if the stream was closed
        match event.event.as_str() {
            "members" => members_frames += 1,
            "join" | "leave" => notices += 1,
            "message" => break,
            _ => {}
        }
    }
    // A room announces about 30 comings and goings a minute (al's own
    // join was one); the rest show in the members frame only.
    assert!((29..=31).contains(&notices), "{notices} notices");
    assert!(
        members_frames < 100,
        "{members_frames} members frames for 500 changes"
    );
    // The last word on who is here is right.
    let members = app
        .stream(&format!("/rooms/{code}/events?name=al"))
        .await
        .next_members()
        .await;
    assert_eq!(members, ["al"]);
}
