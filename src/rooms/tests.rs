//! The registry's tests, on the local backend over an in-memory store.

use super::*;
use crate::model::{Kind, Name, Present, Update};
use crate::store::sqlite::{SqliteStore, IN_MEMORY};
use admission::{Limits, Rate};

pub(crate) fn registry(session_ttl_ms: u64, room_ttl_ms: u64) -> Registry {
    registry_with(session_ttl_ms, room_ttl_ms, 100)
}

fn registry_with(session_ttl_ms: u64, room_ttl_ms: u64, max_rooms: usize) -> Registry {
    open(settings(session_ttl_ms, room_ttl_ms, max_rooms))
}

fn open(settings: Settings) -> Registry {
    let store = SqliteStore::open(IN_MEMORY).unwrap();
    Registry::open_local(settings, Box::new(store)).unwrap()
}

fn settings(session_ttl_ms: u64, room_ttl_ms: u64, max_rooms: usize) -> Settings {
    let lavish = Rate {
        burst: 1e9,
        per_second: 1e9,
    };
    Settings {
        history: Bounds {
            keep: 1000,
            room_events: 1000,
            room_bytes: 1 << 20,
            total_bytes: 1 << 28,
        },
        room_ttl: Duration::from_millis(room_ttl_ms),
        ended_ttl: Duration::from_millis(room_ttl_ms),
        short_codes: 3,
        unload_after: Duration::from_secs(300),
        session_ttl: Duration::from_millis(session_ttl_ms),
        limits: Limits {
            max_streams: 100,
            max_streams_per_visitor: 100,
            max_rooms,
            post_rate: lavish,
            join_rate: lavish,
            room_rate: lavish,
            miss_rate: lavish,
        },
    }
}

/// A registry with one room and a silent follower's subscription on it.
async fn room_with_follower() -> (Registry, RoomCode, Subscription) {
    let registry = registry(60_000, 1000);
    let code = registry.create_room(someone()).await.unwrap();
    let follower = registry.subscribe(&code, None, someone()).await;
    (registry, code, follower.unwrap())
}

/// The visitor every request in these tests comes from.
pub(crate) fn someone() -> VisitorKey {
    VisitorKey::address(std::net::Ipv4Addr::LOCALHOST.into())
}

fn name(n: &str) -> Name {
    Name::parse(n).unwrap()
}

/// The kinds in the room's history once everything queued is stored:
/// a marker message posted (and awaited) after them is stored after
/// them. Markers are left out.
async fn kinds(registry: &Registry, code: &RoomCode) -> Vec<Kind> {
    let marker = format!("marker{}", fastrand::u32(..));
    let id = member(registry, code, &marker).await;
    let text = Text::parse("marker").unwrap();
    registry
        .post(code, id, &text, None, someone())
        .await
        .unwrap();
    let history = registry.history(code, Some(0), usize::MAX).await.unwrap();
    let kept = history
        .iter()
        .filter(|e| !e.event.name.starts_with("marker"));
    kept.map(|e| e.event.kind).collect()
}

/// A new session that joined `code` as member `n`.
async fn member(registry: &Registry, code: &RoomCode, n: &str) -> SessionId {
    let n = part(n, false);
    registry
        .join(code, None, &n, None, someone())
        .await
        .unwrap()
        .0
}

fn part(n: &str, watch: bool) -> Participation {
    Participation {
        name: name(n),
        watch,
    }
}

/// A wall-clock time `ms` from now.
fn in_ms(ms: u64) -> u64 {
    crate::store::now_ms() + ms
}

#[tokio::test]
async fn a_name_is_held_until_its_holder_leaves_and_watchers_are_not_announced() {
    let registry = registry(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let again = registry
        .join(&code, Some(al), &part("AL", false), None, someone())
        .await;
    assert_eq!(
        again.unwrap(),
        (al, part("al", false)),
        "joining again changes nothing"
    );
    let other = registry
        .join(&code, Some(al), &part("bo", false), None, someone())
        .await;
    assert_eq!(other, Err(RoomError::AlreadyIn(name("al"))));
    let forged = registry
        .join(&code, None, &part("\u{430}l", false), None, someone())
        .await;
    assert_eq!(forged, Err(RoomError::NameTaken(name("\u{430}l"))));
    let (bot, _) = registry
        .join(&code, None, &part("logbot", true), None, someone())
        .await
        .unwrap();
    let names = registry.members(&code).await.unwrap();
    let away = |n: &str| Present {
        name: name(n),
        online: false,
    };
    assert_eq!(names.members, vec![away("al")]);
    assert_eq!(names.watchers, vec![away("logbot")]);
    registry.leave(al, &code).await.unwrap();
    registry.leave(bot, &code).await.unwrap();
    assert_eq!(
        registry.leave(bot, &code).await,
        Err(RoomError::NotParticipant)
    );
    member(&registry, &code, "al").await;
    assert_eq!(
        kinds(&registry, &code).await,
        [Kind::Join, Kind::Leave, Kind::Join]
    );
}

#[tokio::test]
async fn sweep_ends_unused_sessions_and_says_they_left() {
    let registry = registry(1000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    registry.sweep(Instant::now(), in_ms(500));
    assert!(registry.session(al).await.unwrap().is_some());
    registry.sweep(Instant::now(), in_ms(1500));
    assert!(
        registry.session(al).await.unwrap().is_none(),
        "unused for longer than the TTL"
    );
    assert_eq!(registry.members(&code).await.unwrap(), Names::default());
    assert_eq!(kinds(&registry, &code).await, [Kind::Join, Kind::Leave]);
}

#[tokio::test]
async fn a_device_link_works_once_and_not_after_ten_minutes() {
    let registry = registry(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let link = registry.link_device(al).await.unwrap();
    assert_eq!(registry.use_device_link(&link).await, Ok(Some(al)));
    assert_eq!(registry.use_device_link(&link).await, Ok(None), "once");
    let late = registry.link_device(al).await.unwrap();
    let now = crate::store::now_ms();
    registry.sweep(Instant::now() + Duration::from_secs(599), now);
    registry.sweep(Instant::now() + Duration::from_secs(601), now);
    assert_eq!(registry.use_device_link(&late).await, Ok(None), "too old");
}

#[tokio::test]
async fn sweep_ends_idle_rooms_and_everyones_part_in_them_and_frees_the_code_later() {
    let registry = registry(60_000, 1000);
    let code = registry.create_room(someone()).await.unwrap();
    let id = member(&registry, &code, "al").await;
    let stream = registry.subscribe(&code, None, someone()).await.unwrap();
    let now = crate::store::now_ms();
    registry.sweep(Instant::now() + Duration::from_secs(10), now);
    assert!(
        registry.require_room(&code).await.is_ok(),
        "a room with a stream lives on"
    );
    drop(stream);
    registry.sweep(Instant::now() + Duration::from_millis(999), now);
    assert!(registry.require_room(&code).await.is_ok());
    registry.sweep(Instant::now() + Duration::from_millis(1001), now);
    let ended = registry.require_room(&code).await;
    assert!(matches!(ended, Err(RoomError::Ended(..))), "{ended:?}");
    let session = registry.session(id).await.unwrap().unwrap();
    assert!(
        session.rooms.is_empty(),
        "the session lives on, out of the room"
    );
    // Reserved for --ended-ttl (here 1 s, on the wall clock), then free.
    let reserved = |registry: &Registry| !registry.inner.rooms.lock().code_free(&code);
    assert!(reserved(&registry), "no new room gets an ended code");
    registry.sweep(Instant::now(), now + 999);
    assert!(reserved(&registry));
    registry.sweep(Instant::now(), now + 60_000);
    assert!(!reserved(&registry));
    let gone = registry.require_room(&code).await;
    assert_eq!(gone, Err(RoomError::NotFound(code.clone())));
}

#[tokio::test]
async fn a_closing_registry_refuses_new_work_and_finishes_its_queue() {
    let registry = registry(60_000, 1000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let _stream = registry.subscribe(&code, None, someone()).await.unwrap();
    registry.close();
    assert_eq!(
        registry.create_room(someone()).await,
        Err(RoomError::ShuttingDown)
    );
    let text = Text::parse("hi").unwrap();
    let refused = registry.post(&code, al, &text, None, someone()).await;
    assert_eq!(refused.unwrap_err(), RoomError::ShuttingDown);
    assert!(registry.subscribe(&code, None, someone()).await.is_err());
    registry.finish().await;
    let history = registry.history(&code, Some(0), 10).await.unwrap();
    assert_eq!(history.len(), 1, "the queued join was stored and published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_created_at_once_never_pass_max_rooms() {
    let registry = registry_with(60_000, 60_000, 3);
    let creating = (0..20).map(|_| {
        let registry = registry.clone();
        tokio::spawn(async move { registry.create_room(someone()).await })
    });
    let mut made = 0;
    for creation in creating.collect::<Vec<_>>() {
        match creation.await.unwrap() {
            Ok(_) => made += 1,
            Err(err) => assert_eq!(err, RoomError::TooManyRooms),
        }
    }
    assert_eq!(made, 3);
}

#[tokio::test]
async fn a_frame_that_is_not_history_goes_to_open_streams_only() {
    let (registry, code, mut open) = room_with_follower().await;
    registry
        .send_frame(&code, "typing", r#"{"name":"al"}"#, None)
        .await
        .unwrap();
    match open.openings[0].1.updates.try_recv() {
        Ok(Update::Frame(frame, None)) => {
            assert_eq!(&frame[..], b"event: typing\ndata: {\"name\":\"al\"}\n\n")
        }
        other => panic!("no frame: {other:?}"),
    }
    let later = registry.subscribe(&code, Some(0), someone()).await.unwrap();
    assert!(later.openings[0].1.backlog.is_empty(), "never replayed");
    let unknown = RoomCode::parse("ZZZZ").unwrap();
    let refused = registry.send_frame(&unknown, "typing", "{}", None).await;
    assert_eq!(refused, Err(RoomError::NotFound(unknown)));
}

#[tokio::test]
async fn a_post_is_published_before_it_is_acknowledged() {
    let (registry, code, mut sub) = room_with_follower().await;
    let al = member(&registry, &code, "al").await;
    while sub.openings[0].1.updates.try_recv().is_ok() {} // the join
    let text = Text::parse("hi").unwrap();
    let posted = registry
        .post(&code, al, &text, None, someone())
        .await
        .unwrap();
    match sub.openings[0].1.updates.try_recv() {
        Ok(Update::Events(events)) => assert_eq!(events[0].event.id, posted.event.id),
        other => panic!("not yet sent: {other:?}"),
    }
    assert_eq!(registry.history(&code, None, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_post_is_refused_where_it_is_stored_once_its_sender_left() {
    let registry = registry(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let eye = part("eye", true);
    let (eye, _) = registry
        .join(&code, None, &eye, None, someone())
        .await
        .unwrap();
    registry.leave(al, &code).await.unwrap();
    let text = Text::parse("after").unwrap();
    for who in [al, eye, SessionId::random()] {
        let refused = registry.post(&code, who, &text, None, someone()).await;
        assert_eq!(refused.unwrap_err(), RoomError::NotParticipant);
    }
    let history = registry.history(&code, Some(0), 10).await.unwrap();
    assert!(history.iter().all(|e| e.event.kind != Kind::Message));
}

#[tokio::test]
async fn a_stream_is_refused_where_it_subscribes_once_its_session_left() {
    let registry = registry(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let as_al = VisitorKey {
        session: Some(al),
        ..someone()
    };
    assert!(registry.subscribe(&code, None, as_al).await.is_ok());
    registry.leave(al, &code).await.unwrap();
    let refused = registry.subscribe(&code, None, as_al).await;
    assert_eq!(refused.err(), Some(RoomError::NotParticipant));
    assert_eq!(registry.gauges().streams, 0, "nothing stays counted");
}

#[tokio::test]
async fn past_the_short_code_limit_new_rooms_get_five_letters() {
    let registry = registry(60_000, 60_000); // 3 short codes at most
    let mut lengths = Vec::new();
    for _ in 0..5 {
        let code = registry.create_room(someone()).await.unwrap();
        lengths.push(code.as_str().len());
    }
    assert_eq!(lengths, [4, 4, 4, 5, 5]);
}

mod unloading;
