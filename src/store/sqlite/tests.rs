//! The SQLite store's tests.

use std::sync::Arc;

use super::*;
use crate::model::{IdempotencyKey, Name, PostKey, Text, Words};
use crate::session::SessionId;

fn message(code: &RoomCode, id: u64, text: &str) -> Change {
    let name = Name::parse("al").unwrap();
    let text = Text::parse(text).unwrap();
    let event = Event::new(id, Kind::Message, code, &name, Some(&text));
    Change::Append {
        code: code.clone(),
        event: Arc::new(Recorded::new(event)),
        key: None,
        at_ms: 1000 + id,
    }
}

fn notice(code: &RoomCode, id: u64) -> Change {
    let name = Name::parse("al").unwrap();
    let event = Event::new(id, Kind::Join, code, &name, None);
    Change::Append {
        code: code.clone(),
        event: Arc::new(Recorded::new(event)),
        key: None,
        at_ms: 1000 + id,
    }
}

/// Every event the store keeps of the room.
fn kept(store: &mut SqliteStore, code: &RoomCode) -> Vec<Recorded> {
    let all = Range {
        after: Some(0),
        before: u64::MAX,
        limit: usize::MAX,
    };
    store.events(code, all).unwrap()
}

fn kept_ids(store: &mut SqliteStore, code: &RoomCode) -> Vec<u64> {
    kept(store, code).iter().map(|e| e.event.id).collect()
}

/// An in-memory store holding one empty room, ABCD.
fn store_with_a_room() -> (SqliteStore, RoomCode) {
    let mut store = SqliteStore::open(IN_MEMORY).unwrap();
    let code = RoomCode::parse("ABCD").unwrap();
    let create = Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 1,
    };
    store.apply(&[create], 10).unwrap();
    (store, code)
}

#[test]
fn what_is_applied_loads_back_trimmed_to_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let path = path.to_str().unwrap();
    let code = RoomCode::parse("ABCD").unwrap();
    {
        let mut store = SqliteStore::open(path).unwrap();
        let mut changes = vec![Change::CreateRoom {
            code: code.clone(),
            key: None,
            at_ms: 5,
        }];
        changes.extend((1..=5).map(|id| message(&code, id, &format!("m{id}"))));
        store.apply(&changes, 3).unwrap();
    }
    let mut store = SqliteStore::open(path).unwrap();
    let codes = store.load().unwrap().codes;
    assert_eq!(codes.len(), 1);
    assert!(codes.contains(&code));
    let room = store.room(&code, 3, 2).unwrap().unwrap();
    assert_eq!(room.last_id, 5);
    assert_eq!(room.last_activity_ms, 1005);
    let newest: Vec<u64> = room.newest.iter().map(|e| e.event.id).collect();
    assert_eq!(newest, [4, 5], "as many of the newest as asked for");
    assert_eq!(kept_ids(&mut store, &code), vec![3, 4, 5]);
    assert_eq!(kept(&mut store, &code)[2].event.text.as_deref(), Some("m5"));
    let newest_two = Range {
        after: None,
        before: u64::MAX,
        limit: 2,
    };
    let ids: Vec<u64> = store
        .events(&code, newest_two)
        .unwrap()
        .iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(ids, [4, 5], "the newest, oldest first");
    let middle = Range {
        after: Some(3),
        before: 5,
        limit: 10,
    };
    assert_eq!(store.events(&code, middle).unwrap().len(), 1);

    store.apply(&[end(&code)], 3).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.codes.is_empty());
    assert!(store.room(&code, 3, 10).unwrap().is_none());
    let ended = EndedRoom {
        at_ms: 9,
        private: false,
    };
    assert_eq!(
        loaded.ended,
        vec![(code.clone(), ended)],
        "its code is kept"
    );
    let left: i64 = store
        .conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the room's events went with it");

    store.apply(&[Change::FreeCode { code }], 3).unwrap();
    assert!(store.load().unwrap().ended.is_empty(), "the code is free");
}

/// The room ends, at 9 ms.
fn end(code: &RoomCode) -> Change {
    Change::EndRoom {
        code: code.clone(),
        at_ms: 9,
        private: false,
    }
}

#[test]
fn participants_and_sessions_load_back_and_go_with_their_room_or_session() {
    let mut store = SqliteStore::open(IN_MEMORY).unwrap();
    let (abcd, efgh) = (
        RoomCode::parse("ABCD").unwrap(),
        RoomCode::parse("EFGH").unwrap(),
    );
    let (al, bo) = (SessionId::random(), SessionId::random());
    let part = |name: &str, watch| Participation {
        name: Name::parse(name).unwrap(),
        watch,
    };
    let join = |session, code: &RoomCode, part| Change::Join {
        session,
        code: code.clone(),
        part,
        notice: None,
        at_ms: 7,
    };
    let create = |code: &RoomCode| Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 1,
    };
    let changes = [
        create(&abcd),
        create(&efgh),
        join(al, &abcd, part("al", false)),
        join(al, &efgh, part("al", false)),
        join(bo, &abcd, part("logbot", true)),
        Change::Used {
            session: al,
            at_ms: 9,
        },
    ];
    store.apply(&changes, 10).unwrap();
    let session = store.session(al).unwrap().unwrap();
    assert_eq!(session.used_ms, 9);
    assert_eq!(
        session.rooms,
        vec![
            (abcd.clone(), part("al", false)),
            (efgh.clone(), part("al", false))
        ]
    );
    fn room(store: &mut SqliteStore, code: &RoomCode) -> Vec<(SessionId, Participation)> {
        let mut people = store.room(code, 10, 10).unwrap().unwrap().participants;
        people.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        people
    }
    assert_eq!(
        room(&mut store, &abcd),
        vec![(al, part("al", false)), (bo, part("logbot", true))]
    );
    let unused = store.unused_sessions(8, 10).unwrap();
    assert_eq!(unused.len(), 1, "bo, last used at 7");
    assert_eq!(unused[0].0, bo);
    assert_eq!(
        unused[0].1.rooms,
        vec![(abcd.clone(), part("logbot", true))]
    );
    assert_eq!(store.idle_rooms(2, 10).unwrap().len(), 2, "made at 1");
    assert_eq!(
        store.idle_rooms(2, 1).unwrap().len(),
        1,
        "at most the limit"
    );
    assert!(store.idle_rooms(1, 10).unwrap().is_empty());
    store
        .apply(
            &[Change::Leave {
                session: bo,
                code: abcd.clone(),
                notice: None,
                at_ms: 8,
            }],
            10,
        )
        .unwrap();
    assert_eq!(room(&mut store, &abcd), vec![(al, part("al", false))]);
    store.apply(&[end(&efgh)], 10).unwrap();
    store
        .apply(&[Change::EndSession { session: al }], 10)
        .unwrap();
    assert!(
        room(&mut store, &abcd).is_empty(),
        "the session's rooms went with it"
    );
    assert!(store.session(al).unwrap().is_none());
    let bo_now = store.session(bo).unwrap().unwrap();
    assert_eq!((bo_now.used_ms, bo_now.rooms.len()), (7, 0));
}

#[test]
fn a_room_active_without_events_is_not_found_idle() {
    let (mut store, code) = store_with_a_room();
    assert_eq!(
        store.idle_rooms(50, 10).unwrap(),
        vec![(code.clone(), false)]
    );
    let active = Change::Active {
        code: code.clone(),
        at_ms: 100,
    };
    store.apply(&[active], 10).unwrap();
    assert!(store.idle_rooms(50, 10).unwrap().is_empty());
    assert_eq!(
        store.room(&code, 10, 10).unwrap().unwrap().last_activity_ms,
        100
    );
}

#[test]
fn a_code_removed_and_made_again_in_one_batch_starts_clean() {
    let mut store = SqliteStore::open(IN_MEMORY).unwrap();
    let code = RoomCode::parse("ABCD").unwrap();
    let create = || Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 1,
    };
    let changes = [
        create(),
        message(&code, 1, "old"),
        message(&code, 2, "old"),
        end(&code),
        create(),
    ];
    store.apply(&changes, 10).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.ended.is_empty(), "made again, it is no ended room");
    assert_eq!(store.room(&code, 10, 10).unwrap().unwrap().last_id, 0);
    assert!(kept(&mut store, &code).is_empty());
    store.apply(&[message(&code, 1, "new")], 10).unwrap();
    assert_eq!(store.room(&code, 10, 10).unwrap().unwrap().last_id, 1);
    assert_eq!(
        kept(&mut store, &code)[0].event.text.as_deref(),
        Some("new")
    );
}

#[test]
fn a_failed_batch_changes_nothing() {
    let (mut store, code) = store_with_a_room();
    let duplicate = [message(&code, 1, "a"), message(&code, 1, "b")];
    assert!(store.apply(&duplicate, 10).is_err());
    assert!(kept(&mut store, &code).is_empty());
}

#[test]
fn a_second_process_and_a_garbage_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let path = path.to_str().unwrap();
    let _first = SqliteStore::open(path).unwrap();
    let err = SqliteStore::open(path).err().unwrap();
    assert!(err.0.contains("another roomcast"), "{err}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(garbage.to_str().unwrap()).err().unwrap();
    assert!(err.0.contains("not a database"), "{err}");
}

#[test]
fn the_log_is_checkpointed_after_answers_not_left_to_grow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let wal = dir.path().join("t.db-wal");
    let code = RoomCode::parse("ABCD").unwrap();
    let mut store = SqliteStore::open(path.to_str().unwrap()).unwrap();
    let create = Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 5,
    };
    store.apply(&[create], 100_000).unwrap();
    // About 10 MB of events, two and a half times the threshold.
    let text = "x".repeat(1000);
    let mut largest = 0;
    for batch in 0..200 {
        let changes: Vec<Change> = (1..=50)
            .map(|i| message(&code, batch * 50 + i, &text))
            .collect();
        store.apply(&changes, 100_000).unwrap();
        store.tidy();
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
    }
    // Unchecked it grows to 55 MB; checkpoints keep it near their
    // threshold (4 MB of pages), plus what is committed while the
    // helper thread copies, with room for a slow disk.
    assert!(largest < 20_000_000, "the log grew to {largest} bytes");
    drop(store);
    let mut store = SqliteStore::open(path.to_str().unwrap()).unwrap();
    store.load().unwrap();
    assert_eq!(kept(&mut store, &code).len(), 10_000);
}

/// `--history`'s rule: notices never push a message out, a message that
/// goes takes the notices before it, notices past the count go oldest
/// first (rooms::history's tests check memory does the same).
#[test]
fn history_keeps_messages_and_notices_apart() {
    let (mut store, code) = store_with_a_room();
    // Messages 2, 4, 11, 12, 15, 17; the rest notices.
    let shape = "nmnmnnnnnnmmnnmnm";
    let changes: Vec<Change> = (shape.chars().enumerate())
        .map(|(i, c)| match c {
            'm' => message(&code, i as u64 + 1, "hi"),
            _ => notice(&code, i as u64 + 1),
        })
        .collect();
    // In batches of a few, as the writer takes them.
    for batch in changes.chunks(4) {
        store.apply(batch, 3).unwrap();
    }
    assert_eq!(kept_ids(&mut store, &code), [12, 13, 14, 15, 16, 17]);

    // A smaller --history than before trims when the room is next read,
    // by the same rule.
    store.room(&code, 1, 10).unwrap();
    assert_eq!(kept_ids(&mut store, &code), [16, 17]);
    let counts: (i64, i64) = store
        .conn
        .query_row("SELECT messages, notices FROM rooms", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(counts, (1, 1));
}

#[test]
fn a_post_key_is_found_within_its_window_and_goes_with_its_room() {
    let (mut store, code) = store_with_a_room();
    let session = SessionId::random();
    let key = IdempotencyKey::parse("k-1").unwrap();
    let text = Text::parse("hello").unwrap();
    let mut posted = message(&code, 1, "hello");
    if let Change::Append { key: kept, .. } = &mut posted {
        *kept = Some((session, PostKey::new(key.clone(), &text)));
    }
    store.apply(&[posted], 10).unwrap();
    let found = store.find_post(&code, session, &key, 0).unwrap().unwrap();
    assert_eq!((found.id, found.name.as_str()), (1, "al"));
    assert_eq!(found.digest, PostKey::new(key.clone(), &text).digest);
    // Sent at 1001 ms: a window that starts after it finds nothing.
    assert_eq!(store.find_post(&code, session, &key, 1002).unwrap(), None);
    // Another session's key of the same name is another key.
    let other = SessionId::random();
    assert_eq!(store.find_post(&code, other, &key, 0).unwrap(), None);
    // A code made again starts with no keys.
    let again = Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 2,
    };
    store.apply(&[again], 10).unwrap();
    assert_eq!(store.find_post(&code, session, &key, 0).unwrap(), None);
}

#[test]
fn messages_kept_before_the_index_are_found_and_go_with_trims_and_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let path = path.to_str().unwrap();
    let code = RoomCode::parse("ABCD").unwrap();
    let words = Words::parse("apple").unwrap();
    let found = |store: &mut SqliteStore| -> Vec<u64> {
        let hits = store.search(&code, &words, u64::MAX, 10).unwrap();
        hits.iter().map(|e| e.event.id).collect()
    };
    {
        let mut store = SqliteStore::open(path).unwrap();
        let mut changes = vec![Change::CreateRoom {
            code: code.clone(),
            key: None,
            at_ms: 5,
        }];
        changes.extend((1..=4).map(|id| message(&code, id, &format!("apple {id}"))));
        changes.push(notice(&code, 5));
        store.apply(&changes, 10).unwrap();
        // As a roomcast before search left it: schema v4, no index.
        store
            .conn
            .execute_batch(
                "DROP TABLE message_words; DROP TABLE ended_rooms;
                 DROP INDEX rooms_by_activity; DROP INDEX sessions_by_use;
                 DROP TABLE reactions;
                 ALTER TABLE events DROP COLUMN target; ALTER TABLE events DROP COLUMN author;
                 ALTER TABLE events DROP COLUMN edited; ALTER TABLE events DROP COLUMN deleted;
                 ALTER TABLE events DROP COLUMN emoji; ALTER TABLE events DROP COLUMN turned_on;
                 PRAGMA user_version = 4;",
            )
            .unwrap();
    }
    let mut store = SqliteStore::open(path).unwrap();
    assert_eq!(found(&mut store), vec![4, 3, 2, 1], "filled as it was made");
    // Another room's words are its own.
    let other = RoomCode::parse("ABCE").unwrap();
    let create = |code: &RoomCode| Change::CreateRoom {
        code: code.clone(),
        key: None,
        at_ms: 6,
    };
    store
        .apply(&[create(&other), message(&other, 1, "apple pie")], 10)
        .unwrap();
    assert_eq!(found(&mut store), vec![4, 3, 2, 1]);
    // A trim takes the words of what it takes.
    store.apply(&[message(&code, 6, "pear")], 2).unwrap();
    assert_eq!(found(&mut store), vec![4]);
    // A room made again under the code starts with none.
    store.apply(&[create(&code)], 10).unwrap();
    assert!(found(&mut store).is_empty());
    let hits = store.search(&other, &words, u64::MAX, 10).unwrap();
    assert_eq!(hits.len(), 1);
}
