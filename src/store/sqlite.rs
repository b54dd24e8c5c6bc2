//! The default store: SQLite in one file (or in memory with `:memory:`),
//! WAL mode, a versioned schema, one transaction per batch of changes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::time::Duration;

use rusqlite::{params, Connection};

use super::checkpoint::Checkpoints;
use super::{Change, Store, StoreError, Stored, StoredRoom};
use crate::model::{Event, Kind, Name, Recorded, RoomCode, RoomKey};
use crate::session::{Participation, SessionId};

/// The path that keeps everything in memory, as SQLite spells it.
pub const IN_MEMORY: &str = ":memory:";

/// Each entry moves the schema up one version (`PRAGMA user_version`).
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // v1: rooms and their events.
    "CREATE TABLE rooms (
         code             TEXT PRIMARY KEY,
         created_ms       INTEGER NOT NULL,
         last_activity_ms INTEGER NOT NULL,
         last_id          INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE events (
         room TEXT    NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
         id   INTEGER NOT NULL,
         kind TEXT    NOT NULL,
         name TEXT    NOT NULL,
         text TEXT,
         ts   TEXT    NOT NULL,
         PRIMARY KEY (room, id)
     ) WITHOUT ROWID;",
    // v2: sessions, who takes part in which room under which name, and
    // private rooms' keys.
    "CREATE TABLE sessions (
         id      TEXT    PRIMARY KEY,
         used_ms INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE participants (
         session TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
         room    TEXT    NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
         name    TEXT    NOT NULL,
         watch   INTEGER NOT NULL,
         PRIMARY KEY (session, room)
     ) WITHOUT ROWID;
     CREATE INDEX participants_by_room ON participants(room);
     ALTER TABLE rooms ADD COLUMN invite_key TEXT;",
];

pub struct SqliteStore {
    conn: Connection,
    /// For a file: its write-ahead log's checkpoints, out of the commits.
    checkpoints: Option<Checkpoints>,
    /// Held for as long as the store is open, so a second roomcast on the
    /// same file stops at start instead of interleaving ids with this one.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up
    /// to date. Refuses a file that is not a database, is from a newer
    /// roomcast, or is in use by another roomcast.
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let fail = |why: String| StoreError(format!("cannot open the database {path}: {why}"));
        let (conn, lock) = if path == IN_MEMORY {
            (
                Connection::open_in_memory().map_err(|e| fail(e.to_string()))?,
                None,
            )
        } else {
            let lock = lock_file(path).map_err(fail)?;
            (
                Connection::open(path).map_err(|e| fail(e.to_string()))?,
                Some(lock),
            )
        };
        let mut store = SqliteStore {
            conn,
            checkpoints: None,
            _lock: lock,
        };
        store.prepare().map_err(&fail)?;
        if path != IN_MEMORY {
            store.checkpoints = Some(Checkpoints::start(&mut store.conn, path).map_err(fail)?);
        }
        Ok(store)
    }

    fn prepare(&mut self) -> Result<(), String> {
        let conn = &mut self.conn;
        // A backup (sqlite3 .backup) may hold a read lock for a moment.
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        // The first statement that reads the file: a file that is not a
        // database fails here.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        // In WAL mode NORMAL loses nothing when the process dies (the kill -9
        // case); only a power cut may lose the last commits.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| e.to_string())?;
        migrate(conn)
    }
}

/// Locks `path` itself with flock, which SQLite's own fcntl locks do not
/// touch; the file is created empty if missing, which SQLite takes as new.
fn lock_file(path: &str) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| e.to_string())?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err("another roomcast process is using it".into()),
        Err(TryLockError::Error(e)) => Err(e.to_string()),
    }
}

fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    let version = usize::try_from(version).map_err(|_| format!("bad schema version {version}"))?;
    if version > MIGRATIONS.len() {
        return Err(format!(
            "its schema is version {version}, newer than this roomcast knows ({})",
            MIGRATIONS.len()
        ));
    }
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(|e| e.to_string())?;
        tx.pragma_update(None, "user_version", (done + 1) as i64)
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

impl Store for SqliteStore {
    fn load(&mut self, history: usize) -> Result<Stored, StoreError> {
        self.load_rooms(history)
            .map_err(|e| StoreError(format!("cannot load rooms: {e}")))
    }

    fn apply(&mut self, changes: &[Change], history: usize) -> Result<(), StoreError> {
        self.apply_all(changes, history)
            .map_err(|e| StoreError(format!("cannot store: {e}")))
    }

    fn tidy(&mut self) {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.tidy(&self.conn);
        }
    }
}

impl SqliteStore {
    fn load_rooms(&mut self, history: usize) -> Result<Stored, String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        // A smaller --history than last time trims at once.
        tx.execute(
            "DELETE FROM events WHERE id <= (SELECT last_id FROM rooms WHERE code = events.room) - ?1",
            [history as i64],
        )
        .map_err(|e| e.to_string())?;
        type Row = (String, u64, u64, Option<String>);
        let rooms: Vec<Row> = {
            let mut select = tx
                .prepare("SELECT code, last_id, last_activity_ms, invite_key FROM rooms")
                .map_err(|e| e.to_string())?;
            let rows = select
                .query_map([], |row| {
                    Ok((row.get(0)?, uint(row, 1)?, uint(row, 2)?, row.get(3)?))
                })
                .map_err(|e| e.to_string())?;
            rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
        };
        let mut loaded = Vec::with_capacity(rooms.len());
        for (code, last_id, last_activity_ms, key) in rooms {
            let room = RoomCode::parse(&code).map_err(|_| format!("bad room code {code:?}"))?;
            let events = newest_events(&tx, &room, history)?;
            let participants = participants(&tx, &room)?;
            loaded.push(StoredRoom {
                code: room,
                last_id,
                key: key.map(RoomKey::stored),
                last_activity_ms,
                events,
                participants,
            });
        }
        let sessions = sessions(&tx)?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(Stored {
            rooms: loaded,
            sessions,
        })
    }

    /// One transaction for the batch. Appends only insert their event; each
    /// room's last id and the trim of its oldest events are written once per
    /// run of appends, not once per event (a busy room gets many appends in
    /// one batch).
    fn apply_all(&mut self, changes: &[Change], history: usize) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        let mut appended = Appended::default();
        for change in changes {
            if matches!(
                change,
                Change::CreateRoom { .. } | Change::DeleteRoom { .. }
            ) {
                // Rooms made or removed in this batch see the appends
                // before them settled, and none after.
                appended.settle(&tx, history).map_err(|e| e.to_string())?;
            }
            apply_room_change(&tx, change).map_err(|e| e.to_string())?;
            if let (Some((_, event)), Some(at_ms)) = (change.event(), change.at_ms()) {
                insert_event(&tx, &event.event).map_err(|e| e.to_string())?;
                appended.note(&event.event, at_ms);
            }
        }
        appended.settle(&tx, history).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())
    }
}

/// The newest append to each room since the last settle: room → (last
/// id, its time).
#[derive(Default)]
struct Appended(HashMap<String, (u64, u64)>);

impl Appended {
    fn note(&mut self, event: &Event, at_ms: u64) {
        match self.0.get_mut(&event.room) {
            Some(newest) => *newest = (event.id, at_ms),
            None => {
                self.0.insert(event.room.clone(), (event.id, at_ms));
            }
        }
    }

    /// Writes each room's last id and drops the events past `history`.
    fn settle(&mut self, tx: &rusqlite::Transaction<'_>, history: usize) -> rusqlite::Result<()> {
        for (room, (last_id, at_ms)) in self.0.drain() {
            tx.prepare_cached(
                "UPDATE rooms SET last_id = ?2, last_activity_ms = ?3 WHERE code = ?1",
            )?
            .execute(params![room, last_id as i64, at_ms as i64])?;
            if let Some(oldest_kept) = last_id.checked_sub(history as u64) {
                tx.prepare_cached("DELETE FROM events WHERE room = ?1 AND id <= ?2")?
                    .execute(params![room, oldest_kept as i64])?;
            }
        }
        Ok(())
    }
}

fn insert_event(tx: &rusqlite::Transaction<'_>, e: &Event) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (room, id, kind, name, text, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.room,
        e.id as i64,
        e.kind.as_str(),
        e.name,
        e.text,
        e.ts
    ])?;
    Ok(())
}

fn apply_room_change(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::CreateRoom { code, key, at_ms } => {
            // A code can come back after its room expired: start it clean.
            tx.prepare_cached("DELETE FROM rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
            tx.prepare_cached(
                "INSERT INTO rooms (code, created_ms, last_activity_ms, last_id, invite_key) VALUES (?1, ?2, ?2, 0, ?3)",
            )?
            .execute(params![code.as_str(), *at_ms as i64, key.as_ref().map(RoomKey::as_str)])?;
        }
        Change::DeleteRoom { code } => {
            tx.prepare_cached("DELETE FROM rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
        }
        Change::Join {
            session,
            code,
            part,
            at_ms,
            ..
        } => {
            let session = session.to_string();
            tx.prepare_cached(
                "INSERT INTO sessions (id, used_ms) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET used_ms = max(used_ms, ?2)",
            )?
            .execute(params![session, *at_ms as i64])?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO participants (session, room, name, watch) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![session, code.as_str(), part.name.as_str(), part.watch])?;
        }
        Change::Leave { session, code, .. } => {
            tx.prepare_cached("DELETE FROM participants WHERE session = ?1 AND room = ?2")?
                .execute(params![session.to_string(), code.as_str()])?;
        }
        Change::Used { session, at_ms } => {
            tx.prepare_cached("UPDATE sessions SET used_ms = max(used_ms, ?2) WHERE id = ?1")?
                .execute(params![session.to_string(), *at_ms as i64])?;
        }
        Change::EndSession { session } => {
            tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                .execute([session.to_string()])?;
        }
        Change::Append { .. } => {}
    }
    Ok(())
}

/// An id or a time: stored as SQLite's i64, never negative.
fn uint(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// A room's participants. A row this roomcast cannot read (a name that
/// no longer passes) is an error, not silently dropped: nobody loses a
/// name without being told.
fn participants(
    tx: &rusqlite::Transaction<'_>,
    room: &RoomCode,
) -> Result<Vec<(SessionId, Participation)>, String> {
    let mut select = tx
        .prepare_cached("SELECT session, name, watch FROM participants WHERE room = ?1")
        .map_err(|e| e.to_string())?;
    let rows = select
        .query_map([room.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for row in rows {
        let (session, name, watch) = row.map_err(|e| e.to_string())?;
        let id = session
            .parse::<SessionId>()
            .map_err(|_| format!("bad session id in {room}"))?;
        let name = Name::parse(&name).map_err(|err| format!("participant of {room}: {err}"))?;
        found.push((id, Participation { name, watch }));
    }
    Ok(found)
}

fn sessions(tx: &rusqlite::Transaction<'_>) -> Result<Vec<(SessionId, u64)>, String> {
    let mut select = tx
        .prepare("SELECT id, used_ms FROM sessions")
        .map_err(|e| e.to_string())?;
    let rows = select
        .query_map([], |row| Ok((row.get::<_, String>(0)?, uint(row, 1)?)))
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for row in rows {
        let (id, used_ms) = row.map_err(|e| e.to_string())?;
        let id = id.parse().map_err(|_| "bad session id".to_string())?;
        found.push((id, used_ms));
    }
    Ok(found)
}

fn newest_events(
    tx: &rusqlite::Transaction<'_>,
    room: &RoomCode,
    history: usize,
) -> Result<Vec<Recorded>, String> {
    let mut select = tx
        .prepare_cached(
            "SELECT id, kind, name, text, ts FROM events WHERE room = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(|e| e.to_string())?;
    let rows = select
        .query_map(params![room.as_str(), history as i64], |row| {
            Ok((
                uint(row, 0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for row in rows {
        let (id, kind, name, text, ts) = row.map_err(|e| e.to_string())?;
        let kind: Kind = kind
            .parse()
            .map_err(|err| format!("event {room}/{id}: {err}"))?;
        events.push(Recorded::new(Event {
            id,
            kind,
            room: room.to_string(),
            name,
            text,
            ts,
        }));
    }
    events.reverse();
    Ok(events)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Name, Text};

    fn message(code: &RoomCode, id: u64, text: &str) -> Change {
        let name = Name::parse("al").unwrap();
        let text = Text::parse(text).unwrap();
        let event = Event::new(id, Kind::Message, code, &name, Some(&text));
        Change::Append {
            code: code.clone(),
            event: Arc::new(Recorded::new(event)),
            at_ms: 1000 + id,
        }
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
        let rooms = store.load(3).unwrap().rooms;
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].last_id, 5);
        assert_eq!(rooms[0].last_activity_ms, 1005);
        let ids: Vec<u64> = rooms[0].events.iter().map(|e| e.event.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!(rooms[0].events[2].event.text.as_deref(), Some("m5"));

        store.apply(&[Change::DeleteRoom { code }], 3).unwrap();
        assert!(store.load(3).unwrap().rooms.is_empty());
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "the room's events went with it");
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
        let stored = store.load(10).unwrap();
        let mut sessions = stored.sessions.clone();
        sessions.sort();
        let mut expected = vec![(al, 9), (bo, 7)];
        expected.sort();
        assert_eq!(sessions, expected);
        fn room(store: &mut SqliteStore, code: &RoomCode) -> Vec<(SessionId, Participation)> {
            let mut found = store.load(10).unwrap().rooms;
            found.retain(|r| &r.code == code);
            let mut people = found.remove(0).participants;
            people.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            people
        }
        assert_eq!(
            room(&mut store, &abcd),
            vec![(al, part("al", false)), (bo, part("logbot", true))]
        );
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
        store
            .apply(&[Change::DeleteRoom { code: efgh.clone() }], 10)
            .unwrap();
        store
            .apply(&[Change::EndSession { session: al }], 10)
            .unwrap();
        assert!(
            room(&mut store, &abcd).is_empty(),
            "the session's rooms went with it"
        );
        assert_eq!(store.load(10).unwrap().sessions, vec![(bo, 7)]);
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
            Change::DeleteRoom { code: code.clone() },
            create(),
        ];
        store.apply(&changes, 10).unwrap();
        let rooms = store.load(10).unwrap().rooms;
        assert_eq!((rooms[0].last_id, rooms[0].events.len()), (0, 0));
        store.apply(&[message(&code, 1, "new")], 10).unwrap();
        let rooms = store.load(10).unwrap().rooms;
        assert_eq!(rooms[0].last_id, 1);
        assert_eq!(rooms[0].events[0].event.text.as_deref(), Some("new"));
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let mut store = SqliteStore::open(IN_MEMORY).unwrap();
        let code = RoomCode::parse("ABCD").unwrap();
        let create = Change::CreateRoom {
            code: code.clone(),
            key: None,
            at_ms: 1,
        };
        store.apply(&[create], 10).unwrap();
        let duplicate = [message(&code, 1, "a"), message(&code, 1, "b")];
        assert!(store.apply(&duplicate, 10).is_err());
        assert!(store.load(10).unwrap().rooms[0].events.is_empty());
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
        assert_eq!(store.load(100_000).unwrap().rooms[0].events.len(), 10_000);
    }
}
