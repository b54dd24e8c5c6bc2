//! Rooms and sessions nobody uses leave memory and come back from the
//! store exactly as they were; those past their TTLs end from the store.

use super::*;

/// A registry that lets go of whatever nobody used for 0 ms (at every
/// sweep), with the TTLs given.
fn unloading(session_ttl_ms: u64, room_ttl_ms: u64) -> Registry {
    let mut settings = settings(session_ttl_ms, room_ttl_ms, 100);
    settings.unload_after = Duration::ZERO;
    open(settings)
}

fn in_memory(registry: &Registry, code: &RoomCode) -> bool {
    registry.inner.rooms.lock().rooms.contains_key(code)
}

/// Sends the `members` frames that waited their turn, sweeps now
/// (letting go of what is idle), then runs what ends stored rooms and
/// sessions past their TTLs.
async fn sweep(registry: &Registry) {
    registry.inner.rooms.lock().flush_members();
    // Past the millisecond of the last use, so that it is before now.
    tokio::time::sleep(Duration::from_millis(2)).await;
    registry.sweep(Instant::now(), crate::store::now_ms());
    registry.inner.backend.keep_rooms().await.unwrap();
}

#[tokio::test]
async fn a_room_let_go_comes_back_whole_on_first_touch() {
    let registry = unloading(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &code, "al").await;
    let text = Text::parse("before").unwrap();
    let first = registry.post(&code, al, &text, None, someone()).await;
    let first = first.unwrap().event.id;
    sweep(&registry).await;
    assert!(
        !in_memory(&registry, &code),
        "nobody used it: out of memory"
    );
    assert!(registry.inner.rooms.lock().sessions.get(&al).is_none());
    assert_eq!(registry.gauges().rooms_stored, Some(1));

    // A lookalike of a name held in a room out of memory is still refused.
    let forged = registry
        .join(&code, None, &part("AL", false), None, someone())
        .await;
    assert_eq!(forged, Err(RoomError::NameTaken(name("AL"))));
    assert!(in_memory(&registry, &code), "read back by the join");
    sweep(&registry).await;

    // The session, read back, still speaks under its name; ids go on.
    let session = registry.session(al).await.unwrap().expect("stored");
    assert_eq!(session.rooms[&code], part("al", false));
    let text = Text::parse("after").unwrap();
    let next = registry.post(&code, al, &text, None, someone()).await;
    assert_eq!(next.unwrap().event.id, first + 1);
    sweep(&registry).await;
    let history = registry.history(&code, Some(0), usize::MAX).await.unwrap();
    let texts: Vec<_> = history.iter().map(|e| e.event.text.clone()).collect();
    assert_eq!(
        texts,
        [None, Some("before".into()), Some("after".into())],
        "join, then both messages, once each"
    );
    sweep(&registry).await;
    let names = registry.members(&code).await.unwrap();
    assert_eq!(names.members.len(), 1, "the roster came back too");
}

#[tokio::test]
async fn a_room_with_a_stream_or_a_request_under_way_stays_in_memory() {
    let registry = unloading(60_000, 60_000);
    let code = registry.create_room(someone()).await.unwrap();
    let stream = registry.subscribe(&code, None, someone()).await.unwrap();
    sweep(&registry).await;
    assert!(in_memory(&registry, &code), "a stream is open");
    drop(stream);
    sweep(&registry).await;
    assert!(!in_memory(&registry, &code));
    assert_eq!(
        registry
            .require_room(&RoomCode::parse("QQQQ").unwrap())
            .await,
        Err(RoomError::NotFound(RoomCode::parse("QQQQ").unwrap())),
        "a code that is no room is answered without the store"
    );
}

#[tokio::test]
async fn stored_rooms_and_sessions_past_their_ttls_end_from_the_store() {
    let registry = unloading(600, 600);
    let code = registry.create_room(someone()).await.unwrap();
    let other = registry.create_room(someone()).await.unwrap();
    let al = member(&registry, &other, "al").await;
    let keep = member(&registry, &other, "keeper").await;
    // The second `members` frame waits its turn; then nothing is under way.
    tokio::time::sleep(room::MEMBERS_EVERY).await;
    sweep(&registry).await;
    assert!(!in_memory(&registry, &code) && !in_memory(&registry, &other));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The keeper's use keeps the other room going.
    let text = Text::parse("still here").unwrap();
    registry.session(keep).await.unwrap().unwrap();
    let said = registry.post(&other, keep, &text, None, someone()).await;
    said.unwrap();
    sweep(&registry).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    sweep(&registry).await;
    let ended = registry.require_room(&code).await;
    assert!(matches!(ended, Err(RoomError::Ended(..))), "{ended:?}");
    assert!(!registry.inner.rooms.lock().code_free(&code), "reserved");
    assert!(registry.session(al).await.unwrap().is_none(), "al's ended");
    let kinds = kinds(&registry, &other).await;
    assert_eq!(
        kinds,
        [Kind::Join, Kind::Join, Kind::Message, Kind::Leave],
        "al left once, the room lives on"
    );
    sweep(&registry).await;
    sweep(&registry).await;
    let again = kinds_now(&registry, &other).await;
    assert_eq!(
        again.iter().filter(|k| **k == Kind::Leave).count(),
        1,
        "once"
    );
}

/// The kinds in the room's history, as it is now.
async fn kinds_now(registry: &Registry, code: &RoomCode) -> Vec<Kind> {
    let history = registry.history(code, Some(0), usize::MAX).await.unwrap();
    history.iter().map(|e| e.event.kind).collect()
}

#[tokio::test]
async fn a_session_ending_in_memory_says_it_left_its_rooms_out_of_memory_too() {
    let registry = unloading(400, 60_000);
    let (kept, cold) = (
        registry.create_room(someone()).await.unwrap(),
        registry.create_room(someone()).await.unwrap(),
    );
    let al = member(&registry, &kept, "al").await;
    let al_there = part("al", false);
    let again = registry.join(&cold, Some(al), &al_there, None, someone());
    again.await.unwrap();
    // A stream keeps one room, and with it al's session, in memory.
    let _stream = registry.subscribe(&kept, None, someone()).await.unwrap();
    sweep(&registry).await;
    assert!(in_memory(&registry, &kept) && !in_memory(&registry, &cold));
    assert!(registry.inner.rooms.lock().sessions.get(&al).is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    sweep(&registry).await;
    sweep(&registry).await;
    assert!(registry.session(al).await.unwrap().is_none(), "ended");
    for code in [&kept, &cold] {
        let leaves = kinds_now(&registry, code).await;
        let leaves = leaves.iter().filter(|k| **k == Kind::Leave).count();
        assert_eq!(leaves, 1, "al left {code} once");
    }
}

#[tokio::test]
async fn rooms_read_in_never_pass_max_rooms() {
    let mut settings = settings(60_000, 60_000, 2);
    settings.unload_after = Duration::ZERO;
    let registry = open(settings);
    let (a, b) = (
        registry.create_room(someone()).await.unwrap(),
        registry.create_room(someone()).await.unwrap(),
    );
    sweep(&registry).await;
    let c = registry.create_room(someone()).await.unwrap();
    registry.require_room(&a).await.unwrap();
    // Memory is full: the room asked for least lately (c) makes way.
    registry.require_room(&b).await.unwrap();
    assert!(in_memory(&registry, &a) && in_memory(&registry, &b));
    assert!(!in_memory(&registry, &c), "let go, still stored");
    // With both held by streams, nothing may go: refused, not grown.
    let _streams = (
        registry.subscribe(&a, None, someone()).await.unwrap(),
        registry.subscribe(&b, None, someone()).await.unwrap(),
    );
    assert_eq!(
        registry.require_room(&c).await,
        Err(RoomError::TooManyRooms)
    );
    assert_eq!(registry.inner.rooms.lock().rooms.len(), 2);
}
