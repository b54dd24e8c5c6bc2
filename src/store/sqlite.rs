//! The default store: SQLite in one file (or in memory with `:memory:`),
//! WAL mode, a versioned schema, one transaction per batch of changes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::checkpoint::Checkpoints;
use super::{
    keys_window_start_ms, Change, EndedRoom, KeptPost, Range, Store, StoreError, Stored,
    StoredRoom, StoredSession,
};
use crate::code_set::CodeSet;
use crate::model::{
    Author, Event, IdempotencyKey, Kind, Name, PostKey, Recorded, RoomCode, RoomKey, Words,
};
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
    // v3: how many messages and notices each room keeps, so that
    // --history's rule trims without counting.
    "ALTER TABLE rooms ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE rooms ADD COLUMN notices INTEGER NOT NULL DEFAULT 0;
     UPDATE rooms SET
         messages = (SELECT count(*) FROM events WHERE room = rooms.code AND kind = 'message'),
         notices = (SELECT count(*) FROM events WHERE room = rooms.code AND kind <> 'message');",
    // v4: the Idempotency-Key each message was sent with, for a day: who
    // sent it, and what answers a repeat (its id, name and time, and the
    // digest of its text, never the text itself).
    "CREATE TABLE post_keys (
         room    TEXT    NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
         session TEXT    NOT NULL,
         key     TEXT    NOT NULL,
         id      INTEGER NOT NULL,
         name    TEXT    NOT NULL,
         ts      TEXT    NOT NULL,
         digest  TEXT    NOT NULL,
         at_ms   INTEGER NOT NULL,
         PRIMARY KEY (room, session, key)
     ) WITHOUT ROWID;
     CREATE INDEX post_keys_by_age ON post_keys(at_ms);",
    // v5: the words of every message, for search (filled from the
    // messages kept so far as it is made: see `index_kept_messages`).
    // Each row's rowid is `text_rowid(room, id)`.
    "CREATE VIRTUAL TABLE message_words USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');",
    // v6: the rooms that ended, while their codes are not given out again.
    "CREATE TABLE ended_rooms (
         code    TEXT    PRIMARY KEY,
         at_ms   INTEGER NOT NULL,
         private INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // v7: rooms are read when first asked for, and end (sessions too) by
    // a query for the longest idle, not by holding them all in memory.
    "CREATE INDEX rooms_by_activity ON rooms(last_activity_ms);
     CREATE INDEX sessions_by_use ON sessions(used_ms);",
    // v8: messages are edited, deleted and reacted to. An event keeps who
    // sent it (`author`, never a session id: see `model::Author`), and a
    // change of a message the message it changes (`target`); a message
    // reads as it is now (`edited`, `deleted`, and its rows in
    // `reactions`, in the order given: `seq` is the reaction's event id).
    "ALTER TABLE events ADD COLUMN target INTEGER;
     ALTER TABLE events ADD COLUMN author TEXT;
     ALTER TABLE events ADD COLUMN edited TEXT;
     ALTER TABLE events ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE events ADD COLUMN emoji TEXT;
     ALTER TABLE events ADD COLUMN turned_on INTEGER;
     CREATE TABLE reactions (
         room   TEXT    NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
         target INTEGER NOT NULL,
         emoji  TEXT    NOT NULL,
         author TEXT    NOT NULL,
         name   TEXT    NOT NULL,
         seq    INTEGER NOT NULL,
         PRIMARY KEY (room, target, emoji, author)
     ) WITHOUT ROWID;",
];

/// The schema version that made `message_words`: moving past it fills it.
const SEARCH_VERSION: usize = 5;

/// The ids of one room's events in `message_words`: its rowids are the
/// room's number (its code in base 27, letters 1 to 26: codes of up to
/// five letters fit) times this, plus the event's id, so a room's rows are
/// one range and a trim or a room's end deletes them by range.
const IDS_PER_ROOM: i64 = 1 << 38;

// The longest code's number (27^5) times IDS_PER_ROOM must fit an i64.
const _: () = assert!(
    27i64.pow(crate::model::RoomCode::LONG as u32) <= i64::MAX / IDS_PER_ROOM,
    "room codes this long do not fit message_words' rowids"
);

/// The rowid of event `id` of `room` in `message_words`.
fn text_rowid(room: &str, id: u64) -> i64 {
    text_rowids(room).0 + (id as i64 & (IDS_PER_ROOM - 1))
}

/// The first and the last rowid of `room`'s rows in `message_words`.
fn text_rowids(room: &str) -> (i64, i64) {
    debug_assert!(room.len() <= RoomCode::LONG && room.bytes().all(|b| b.is_ascii_uppercase()));
    let number = room
        .bytes()
        .fold(0i64, |n, b| n * 27 + i64::from(b.saturating_sub(b'A') + 1));
    let first = number * IDS_PER_ROOM;
    (first, first + IDS_PER_ROOM - 1)
}

/// How often keys older than the window are deleted (in `tidy`).
const FORGET_KEYS_EVERY: Duration = Duration::from_secs(60);

pub struct SqliteStore {
    conn: Connection,
    /// When keys past the idempotency window were last deleted.
    keys_forgotten: Instant,
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
            keys_forgotten: Instant::now(),
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
        // secure_delete: what a delete or an update takes out of the file
        // is overwritten with zeros, so a deleted message's words are left
        // neither in a page's free space nor in the pages a long one
        // overflowed to (FAST would leave those).
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )
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
        if done + 1 == SEARCH_VERSION {
            index_kept_messages(&tx).map_err(|e| e.to_string())?;
        }
        tx.pragma_update(None, "user_version", (done + 1) as i64)
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Puts every message kept so far into `message_words`.
fn index_kept_messages(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let mut select = tx.prepare("SELECT room, id, text FROM events WHERE kind = 'message'")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let (room, id, text): (String, i64, Option<String>) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        tx.prepare_cached("INSERT INTO message_words (rowid, text) VALUES (?1, ?2)")?
            .execute(params![text_rowid(&room, id as u64), text])?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Stored, StoreError> {
        self.load_codes()
            .map_err(|e| StoreError(format!("cannot load rooms: {e}")))
    }

    fn room(
        &mut self,
        code: &RoomCode,
        history: usize,
        newest: usize,
    ) -> Result<Option<StoredRoom>, StoreError> {
        self.read_room(code, history, newest)
            .map_err(|e| StoreError(format!("cannot read room {code}: {e}")))
    }

    fn session(&mut self, id: SessionId) -> Result<Option<StoredSession>, StoreError> {
        read_session(&self.conn, id).map_err(|e| StoreError(format!("cannot read a session: {e}")))
    }

    fn idle_rooms(
        &mut self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(RoomCode, bool)>, StoreError> {
        idle_rooms(&self.conn, before_ms, limit)
            .map_err(|e| StoreError(format!("cannot find idle rooms: {e}")))
    }

    fn unused_sessions(
        &mut self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(SessionId, StoredSession)>, StoreError> {
        unused_sessions(&self.conn, before_ms, limit)
            .map_err(|e| StoreError(format!("cannot find unused sessions: {e}")))
    }

    fn apply(&mut self, changes: &[Change], history: usize) -> Result<(), StoreError> {
        self.apply_all(changes, history)
            .map_err(|e| StoreError(format!("cannot store: {e}")))
    }

    fn events(&mut self, code: &RoomCode, range: Range) -> Result<Vec<Recorded>, StoreError> {
        events(&self.conn, code, range)
            .map_err(|e| StoreError(format!("cannot read the history of {code}: {e}")))
    }

    fn search(
        &mut self,
        code: &RoomCode,
        words: &Words,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Recorded>, StoreError> {
        search(&self.conn, code, words, before, limit)
            .map_err(|e| StoreError(format!("cannot search {code}: {e}")))
    }

    fn find_post(
        &mut self,
        code: &RoomCode,
        session: SessionId,
        key: &IdempotencyKey,
        since_ms: u64,
    ) -> Result<Option<KeptPost>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, name, ts, digest FROM post_keys
                 WHERE room = ?1 AND session = ?2 AND key = ?3 AND at_ms >= ?4",
            )
            .and_then(|mut select| {
                let at = params![
                    code.as_str(),
                    session.to_string(),
                    key.as_str(),
                    since_ms as i64
                ];
                select
                    .query_row(at, |row| {
                        Ok(KeptPost {
                            id: uint(row, 0)?,
                            name: row.get(1)?,
                            ts: row.get(2)?,
                            digest: row.get(3)?,
                        })
                    })
                    .optional()
            })
            .map_err(|e| StoreError(format!("cannot look up a post's key in {code}: {e}")))
    }

    fn tidy(&mut self) {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.tidy(&self.conn);
        }
        if self.keys_forgotten.elapsed() >= FORGET_KEYS_EVERY {
            self.keys_forgotten = Instant::now();
            let until = keys_window_start_ms();
            let forgotten = self
                .conn
                .prepare_cached("DELETE FROM post_keys WHERE at_ms < ?1")
                .and_then(|mut delete| delete.execute([until as i64]));
            if let Err(err) = forgotten {
                // Kept a while longer: the lookup reads only the window.
                log::warn!("old Idempotency-Keys stay stored for now: {err}");
            }
        }
    }
}

impl SqliteStore {
    /// Every room's code (one row read each: a million in well under a
    /// second) and the ended rooms.
    fn load_codes(&mut self) -> Result<Stored, String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        let mut codes = CodeSet::default();
        {
            let mut select = tx
                .prepare("SELECT code FROM rooms")
                .map_err(|e| e.to_string())?;
            let mut rows = select.query([]).map_err(|e| e.to_string())?;
            while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                let code = row.get_ref(0).map_err(|e| e.to_string())?;
                let code = code.as_str().map_err(|e| e.to_string())?;
                let code = RoomCode::parse(code).map_err(|_| format!("bad room code {code:?}"))?;
                codes.insert(&code);
            }
        }
        let ended = ended_rooms(&tx).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(Stored { codes, ended })
    }

    /// One room, trimmed to `history` first if it keeps more (a smaller
    /// `--history` than last time).
    fn read_room(
        &mut self,
        code: &RoomCode,
        history: usize,
        newest: usize,
    ) -> Result<Option<StoredRoom>, String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        type Row = (u64, u64, Option<String>, u64, u64);
        let row: Option<Row> = tx
            .prepare_cached(
                "SELECT last_id, last_activity_ms, invite_key, messages, notices FROM rooms
                 WHERE code = ?1",
            )
            .and_then(|mut select| {
                select
                    .query_row([code.as_str()], |row| {
                        Ok((
                            uint(row, 0)?,
                            uint(row, 1)?,
                            row.get(2)?,
                            uint(row, 3)?,
                            uint(row, 4)?,
                        ))
                    })
                    .optional()
            })
            .map_err(|e| e.to_string())?;
        let Some((last_id, last_activity_ms, key, messages, notices)) = row else {
            return Ok(None);
        };
        let kept =
            trim(&tx, code.as_str(), (messages, notices), history).map_err(|e| e.to_string())?;
        if kept != (messages, notices) {
            tx.execute(
                "UPDATE rooms SET messages = ?2, notices = ?3 WHERE code = ?1",
                params![code.as_str(), kept.0 as i64, kept.1 as i64],
            )
            .map_err(|e| e.to_string())?;
        }
        let participants = participants(&tx, code)?;
        let range = Range {
            after: None,
            before: u64::MAX,
            limit: newest,
        };
        let newest = events(&tx, code, range)?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(Some(StoredRoom {
            code: code.clone(),
            last_id,
            key: key.map(RoomKey::stored),
            last_activity_ms,
            participants,
            newest,
        }))
    }

    /// One transaction for the batch. Appends only insert their event; each
    /// room's last id and the trim of its oldest events are written once per
    /// run of appends, not once per event (a busy room gets many appends in
    /// one batch).
    fn apply_all(&mut self, changes: &[Change], history: usize) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        let mut appended = Appended::default();
        for change in changes {
            if matches!(change, Change::CreateRoom { .. } | Change::EndRoom { .. }) {
                // Rooms made or removed in this batch see the appends
                // before them settled, and none after.
                appended.settle(&tx, history).map_err(|e| e.to_string())?;
            }
            apply_room_change(&tx, change).map_err(|e| e.to_string())?;
            if let (Some((_, event)), Some(at_ms)) = (change.event(), change.at_ms()) {
                insert_event(&tx, &event.event).map_err(|e| e.to_string())?;
                appended.note(&event.event, at_ms);
            }
            if let Change::Append {
                event,
                key: Some((session, key)),
                at_ms,
                ..
            } = change
            {
                insert_key(&tx, &event.event, *session, key, *at_ms).map_err(|e| e.to_string())?;
            }
        }
        appended.settle(&tx, history).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        if changes.iter().any(Change::deletes_words) {
            self.wipe_log();
        }
        Ok(())
    }

    /// Copies the write-ahead log into the database and empties it: the
    /// pages written before a delete, which still hold its words, go.
    /// Deletes are rare (a person's); a reader holding the log back (a
    /// backup) leaves it for the next one, or SQLite's own reuse of the log.
    fn wipe_log(&self) {
        let wiped = (self.conn).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match wiped {
            Ok(0) => {}
            Ok(_) => {
                log::warn!("a deleted message's words stay in the log until it is reused: busy")
            }
            Err(err) => log::warn!("a deleted message's words stay in the log: {err}"),
        }
    }
}

/// What was appended to each room since the last settle.
#[derive(Default)]
struct Appended(HashMap<String, Added>);

#[derive(Default)]
struct Added {
    /// The newest event's id and time.
    last_id: u64,
    at_ms: u64,
    messages: u64,
    notices: u64,
}

impl Appended {
    fn note(&mut self, event: &Event, at_ms: u64) {
        let added = match self.0.get_mut(&event.room) {
            Some(added) => added,
            None => self.0.entry(event.room.clone()).or_default(),
        };
        (added.last_id, added.at_ms) = (event.id, at_ms);
        if event.kind == Kind::Message {
            added.messages += 1;
        } else {
            added.notices += 1;
        }
    }

    /// Writes each room's last id and counts, and keeps `history`: three
    /// statements a room (its counts, the trim, the room's row).
    fn settle(&mut self, tx: &rusqlite::Transaction<'_>, history: usize) -> rusqlite::Result<()> {
        for (room, added) in self.0.drain() {
            let (messages, notices): (u64, u64) = tx
                .prepare_cached("SELECT messages, notices FROM rooms WHERE code = ?1")?
                .query_row([&room], |row| Ok((uint(row, 0)?, uint(row, 1)?)))?;
            let kept = (messages + added.messages, notices + added.notices);
            let (messages, notices) = trim(tx, &room, kept, history)?;
            tx.prepare_cached(
                "UPDATE rooms SET last_id = ?2, last_activity_ms = ?3, messages = ?4, notices = ?5
                 WHERE code = ?1",
            )?
            .execute(params![
                room,
                added.last_id as i64,
                added.at_ms as i64,
                messages as i64,
                notices as i64
            ])?;
        }
        Ok(())
    }
}

/// `--history`'s rule on one room that keeps `(messages, notices)`: the
/// oldest messages past `history` go, each with the notices before it,
/// then the oldest notices past `history`. What it keeps then.
fn trim(
    tx: &rusqlite::Transaction<'_>,
    room: &str,
    (mut messages, mut notices): (u64, u64),
    history: usize,
) -> rusqlite::Result<(u64, u64)> {
    let history = history as u64;
    let message = Kind::Message.as_str();
    if messages > history {
        let over = messages - history;
        // Up to the newest message that goes, everything goes, and its
        // words with it.
        let newest_gone: Option<u64> = tx
            .prepare_cached(
                "SELECT id FROM events WHERE room = ?1 AND kind = ?2 ORDER BY id LIMIT 1 OFFSET ?3",
            )?
            .query_row(params![room, message, (over - 1) as i64], |row| {
                uint(row, 0)
            })
            .optional()?;
        // (None only if the counts were wrong: nothing goes then.)
        let newest_gone = newest_gone.unwrap_or(0);
        let gone = tx
            .prepare_cached("DELETE FROM events WHERE room = ?1 AND id <= ?2")?
            .execute(params![room, newest_gone as i64])? as u64;
        forget_words(tx, room, newest_gone)?;
        tx.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND target <= ?2")?
            .execute(params![room, newest_gone as i64])?;
        messages -= over;
        notices = notices.saturating_sub(gone.saturating_sub(over));
    }
    if notices > history {
        let gone = tx
            .prepare_cached(
                "DELETE FROM events WHERE room = ?1 AND id IN
                     (SELECT id FROM events WHERE room = ?1 AND kind <> ?2 ORDER BY id LIMIT ?3)",
            )?
            .execute(params![room, message, (notices - history) as i64])? as u64;
        notices -= gone;
    }
    Ok((messages, notices))
}

fn insert_event(tx: &rusqlite::Transaction<'_>, e: &Event) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (room, id, kind, name, text, ts, target, author, emoji, turned_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        e.room,
        e.id as i64,
        e.kind.as_str(),
        e.name,
        e.text,
        e.ts,
        e.target.map(|t| t as i64),
        e.author.as_ref().map(Author::as_str),
        e.emoji,
        e.on
    ])?;
    match (e.kind, e.target) {
        (Kind::Message, _) => {
            tx.prepare_cached("INSERT INTO message_words (rowid, text) VALUES (?1, ?2)")?
                .execute(params![text_rowid(&e.room, e.id), e.text])?;
        }
        (Kind::Edit | Kind::Delete | Kind::Reaction, Some(target)) => amend(tx, e, target)?,
        _ => {}
    }
    Ok(())
}

/// Takes a message's words out of the search index itself, not only out
/// of its answers (FTS5's secure-delete), so that a delete leaves none of
/// them, nor of the texts it had before its edits. Only for a person's
/// edit or delete: the trims of old messages would pay for it on every
/// post (a third of the in-memory store's posts a second, measured).
fn unindex(tx: &rusqlite::Transaction<'_>, rowid: i64) -> rusqlite::Result<()> {
    let secure = "INSERT INTO message_words (message_words, rank) VALUES ('secure-delete', ?1)";
    tx.prepare_cached(secure)?.execute([1])?;
    tx.prepare_cached("DELETE FROM message_words WHERE rowid = ?1")?
        .execute([rowid])?;
    tx.prepare_cached(secure)?.execute([0])?;
    Ok(())
}

/// The change `e` makes to the message `target`, as `Event::amended_by`
/// makes it in memory. A delete leaves no words anywhere: not the
/// message's, not its edits', not in the index or its post's key.
fn amend(tx: &rusqlite::Transaction<'_>, e: &Event, target: u64) -> rusqlite::Result<()> {
    let (room, target) = (e.room.as_str(), target as i64);
    let live = "room = ?1 AND id = ?2 AND kind = 'message' AND deleted = 0";
    let rowid = text_rowid(room, target as u64);
    match e.kind {
        Kind::Edit => {
            let edited = tx
                .prepare_cached(&format!(
                    "UPDATE events SET text = ?3, edited = ?4 WHERE {live}"
                ))?
                .execute(params![room, target, e.text, e.ts])?;
            if edited > 0 {
                unindex(tx, rowid)?;
                tx.prepare_cached("INSERT INTO message_words (rowid, text) VALUES (?1, ?2)")?
                    .execute(params![rowid, e.text])?;
            }
        }
        Kind::Delete => {
            tx.prepare_cached(&format!(
                "UPDATE events SET name = '', text = NULL, edited = NULL, author = NULL, deleted = 1
                 WHERE {live}"
            ))?
            .execute(params![room, target])?;
            unindex(tx, rowid)?;
            tx.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND target = ?2")?
                .execute(params![room, target])?;
            // Its key stays (a repeat of the post must not store it
            // again) with nothing of the words: no name, no digest.
            tx.prepare_cached(
                "UPDATE post_keys SET name = '', digest = '' WHERE room = ?1 AND id = ?2",
            )?
            .execute(params![room, target])?;
            // Its changes go with it: edits hold its words, a reaction
            // of the sender's their name.
            let changes = tx
                .prepare_cached(
                    "DELETE FROM events
                     WHERE room = ?1 AND kind IN ('edit', 'reaction') AND target = ?2",
                )?
                .execute(params![room, target])?;
            tx.prepare_cached("UPDATE rooms SET notices = max(notices - ?2, 0) WHERE code = ?1")?
                .execute(params![room, changes as i64])?;
        }
        Kind::Reaction => {
            let author = e.author.as_ref().map(Author::as_str);
            if e.on == Some(true) {
                tx.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO reactions (room, target, emoji, author, name, seq)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM events WHERE {live})"
                ))?
                .execute(params![
                    room,
                    target,
                    e.emoji,
                    author,
                    e.name,
                    e.id as i64
                ])?;
            } else {
                tx.prepare_cached(
                    "DELETE FROM reactions WHERE room = ?1 AND target = ?2 AND emoji = ?3 AND author = ?4",
                )?
                .execute(params![room, target, e.emoji, author])?;
            }
        }
        Kind::Message | Kind::Join | Kind::Leave => {}
    }
    Ok(())
}

/// Takes `room`'s events up to `id` (all of them for `u64::MAX`) out of
/// the search index.
fn forget_words(tx: &rusqlite::Transaction<'_>, room: &str, up_to: u64) -> rusqlite::Result<()> {
    let (first, last) = text_rowids(room);
    let last = last.min(first.saturating_add(up_to.min(IDS_PER_ROOM as u64 - 1) as i64));
    tx.prepare_cached("DELETE FROM message_words WHERE rowid BETWEEN ?1 AND ?2")?
        .execute(params![first, last])?;
    Ok(())
}

/// The key a message was sent with. (Two posts within the window never
/// share one: the registry looks a key up before it stores, and refuses
/// it while its post is under way. A row past the window that tidy has
/// not deleted yet is replaced, never a conflict that fails the batch.)
fn insert_key(
    tx: &rusqlite::Transaction<'_>,
    e: &Event,
    session: SessionId,
    key: &PostKey,
    at_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO post_keys (room, session, key, id, name, ts, digest, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (room, session, key) DO UPDATE SET
             id = ?4, name = ?5, ts = ?6, digest = ?7, at_ms = ?8",
    )?
    .execute(params![
        e.room,
        session.to_string(),
        key.key.as_str(),
        e.id as i64,
        e.name,
        e.ts,
        key.digest,
        at_ms as i64
    ])?;
    Ok(())
}

fn apply_room_change(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::CreateRoom { code, key, at_ms } => {
            // A code can come back after its room ended: start it clean.
            tx.prepare_cached("DELETE FROM rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
            tx.prepare_cached("DELETE FROM ended_rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
            forget_words(tx, code.as_str(), u64::MAX)?;
            tx.prepare_cached(
                "INSERT INTO rooms (code, created_ms, last_activity_ms, last_id, invite_key) VALUES (?1, ?2, ?2, 0, ?3)",
            )?
            .execute(params![code.as_str(), *at_ms as i64, key.as_ref().map(RoomKey::as_str)])?;
        }
        Change::EndRoom {
            code,
            at_ms,
            private,
        } => {
            // Its events, participants and keys go with it (cascade).
            tx.prepare_cached("DELETE FROM rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
            forget_words(tx, code.as_str(), u64::MAX)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO ended_rooms (code, at_ms, private) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![code.as_str(), *at_ms as i64, private])?;
        }
        Change::FreeCode { code } => {
            tx.prepare_cached("DELETE FROM ended_rooms WHERE code = ?1")?
                .execute([code.as_str()])?;
        }
        Change::Active { code, at_ms } => {
            tx.prepare_cached(
                "UPDATE rooms SET last_activity_ms = max(last_activity_ms, ?2) WHERE code = ?1",
            )?
            .execute(params![code.as_str(), *at_ms as i64])?;
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

/// The rooms that ended and whose codes are not free yet.
fn ended_rooms(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<Vec<(RoomCode, EndedRoom)>> {
    let mut select = tx.prepare("SELECT code, at_ms, private FROM ended_rooms")?;
    let rows = select.query_map([], |row| {
        let code: String = row.get(0)?;
        let ended = EndedRoom {
            at_ms: uint(row, 1)?,
            private: row.get(2)?,
        };
        Ok((code, ended))
    })?;
    let mut ended = Vec::new();
    for row in rows {
        let (code, room) = row?;
        // A code this roomcast cannot read is no room it could give out.
        if let Ok(code) = RoomCode::parse(&code) {
            ended.push((code, room));
        }
    }
    Ok(ended)
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

/// A session's participations, by the session's id as stored.
fn session_rooms(conn: &Connection, id: &str) -> Result<Vec<(RoomCode, Participation)>, String> {
    let mut select = conn
        .prepare_cached("SELECT room, name, watch FROM participants WHERE session = ?1")
        .map_err(|e| e.to_string())?;
    let rows = select
        .query_map([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for row in rows {
        let (room, name, watch) = row.map_err(|e| e.to_string())?;
        let room = RoomCode::parse(&room).map_err(|_| format!("bad room code {room:?}"))?;
        let name = Name::parse(&name).map_err(|err| format!("participant of {room}: {err}"))?;
        found.push((room, Participation { name, watch }));
    }
    Ok(found)
}

fn read_session(conn: &Connection, id: SessionId) -> Result<Option<StoredSession>, String> {
    let id = id.to_string();
    let used_ms = conn
        .prepare_cached("SELECT used_ms FROM sessions WHERE id = ?1")
        .and_then(|mut select| select.query_row([&id], |row| uint(row, 0)).optional())
        .map_err(|e| e.to_string())?;
    let Some(used_ms) = used_ms else {
        return Ok(None);
    };
    let rooms = session_rooms(conn, &id)?;
    Ok(Some(StoredSession { used_ms, rooms }))
}

fn idle_rooms(
    conn: &Connection,
    before_ms: u64,
    limit: usize,
) -> Result<Vec<(RoomCode, bool)>, String> {
    let mut select = conn
        .prepare_cached(
            "SELECT code, invite_key IS NOT NULL FROM rooms WHERE last_activity_ms < ?1
             ORDER BY last_activity_ms LIMIT ?2",
        )
        .map_err(|e| e.to_string())?;
    let rows = select
        .query_map(params![before_ms as i64, limit as i64], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for row in rows {
        let (code, private) = row.map_err(|e| e.to_string())?;
        let code = RoomCode::parse(&code).map_err(|_| format!("bad room code {code:?}"))?;
        found.push((code, private));
    }
    Ok(found)
}

fn unused_sessions(
    conn: &Connection,
    before_ms: u64,
    limit: usize,
) -> Result<Vec<(SessionId, StoredSession)>, String> {
    let unused: Vec<(String, u64)> = {
        let mut select = conn
            .prepare_cached(
                "SELECT id, used_ms FROM sessions WHERE used_ms < ?1 ORDER BY used_ms LIMIT ?2",
            )
            .map_err(|e| e.to_string())?;
        let rows = select
            .query_map(params![before_ms as i64, limit as i64], |row| {
                Ok((row.get::<_, String>(0)?, uint(row, 1)?))
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let mut found = Vec::with_capacity(unused.len());
    for (id, used_ms) in unused {
        let rooms = session_rooms(conn, &id)?;
        let id = id.parse().map_err(|_| "bad session id".to_string())?;
        found.push((id, StoredSession { used_ms, rooms }));
    }
    Ok(found)
}

fn events(conn: &Connection, room: &RoomCode, range: Range) -> Result<Vec<Recorded>, String> {
    let Range {
        after,
        before,
        limit,
    } = range;
    // SQLite counts in signed 64 bits.
    let (before, limit) = (
        before.min(i64::MAX as u64) as i64,
        limit.min(i64::MAX as usize) as i64,
    );
    let mut select = match after {
        Some(_) => conn.prepare_cached(
            "SELECT id, kind, name, text, ts, target, author, edited, deleted, emoji, turned_on
             FROM events WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id LIMIT ?4",
        ),
        None => conn.prepare_cached(
            "SELECT id, kind, name, text, ts, target, author, edited, deleted, emoji, turned_on
             FROM events WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4",
        ),
    }
    .map_err(|e| e.to_string())?;
    let after = after.unwrap_or(0).min(i64::MAX as u64) as i64;
    let rows = select
        .query_map(params![room.as_str(), after, before, limit], event_row)
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.map_err(|e| e.to_string())?);
    }
    if range.after.is_none() {
        events.reverse();
    }
    recorded(conn, room, events)
}

/// The newest `limit` messages below `before` that have `words`, newest
/// first: FTS5 finds them in the room's range of rowids.
fn search(
    conn: &Connection,
    room: &RoomCode,
    words: &Words,
    before: u64,
    limit: usize,
) -> Result<Vec<Recorded>, String> {
    let (first, last) = text_rowids(room.as_str());
    let below = text_rowid(room.as_str(), before.min(IDS_PER_ROOM as u64 - 1)).min(last + 1);
    let mut select = conn
        .prepare_cached(
            "SELECT id, kind, name, text, ts, target, author, edited, deleted, emoji, turned_on
             FROM events WHERE room = ?1 AND id IN
                 (SELECT rowid - ?2 FROM message_words
                  WHERE message_words MATCH ?3 AND rowid >= ?2 AND rowid < ?4
                  ORDER BY rowid DESC LIMIT ?5)
             ORDER BY id DESC",
        )
        .map_err(|e| e.to_string())?;
    let limit = limit.min(i64::MAX as usize) as i64;
    let rows = select
        .query_map(
            params![room.as_str(), first, words.fts5(), below, limit],
            event_row,
        )
        .map_err(|e| e.to_string())?;
    let rows: Vec<Event> = rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    recorded(conn, room, rows)
}

/// An event as its row reads (its room and reactions not yet filled in;
/// its kind checked by `recorded`).
fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get(1)?;
    let kind = kind.parse().map_err(|err: crate::model::Invalid| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, err.0.into())
    })?;
    let target: Option<i64> = row.get(5)?;
    Ok(Event {
        id: uint(row, 0)?,
        kind,
        name: row.get(2)?,
        text: row.get(3)?,
        ts: row.get(4)?,
        target: target.map(|t| t as u64),
        author: row.get::<_, Option<String>>(6)?.map(Author::stored),
        edited: row.get(7)?,
        deleted: row.get(8)?,
        emoji: row.get(9)?,
        on: row.get(10)?,
        ..Event::default()
    })
}

/// The events of `room` read (in any order), with each
/// message's reactions as they stand: one query for all of them.
fn recorded(
    conn: &Connection,
    room: &RoomCode,
    mut events: Vec<Event>,
) -> Result<Vec<Recorded>, String> {
    let ids = events
        .iter()
        .filter(|e| e.kind == Kind::Message)
        .map(|e| e.id);
    if let (Some(low), Some(high)) = (ids.clone().min(), ids.max()) {
        let mut select = conn
            .prepare_cached(
                "SELECT target, emoji, author, name, seq FROM reactions
                 WHERE room = ?1 AND target BETWEEN ?2 AND ?3 ORDER BY target, seq",
            )
            .map_err(|e| e.to_string())?;
        let rows = select
            .query_map(params![room.as_str(), low as i64, high as i64], |row| {
                let change = Event {
                    kind: Kind::Reaction,
                    target: Some(uint(row, 0)?),
                    emoji: row.get(1)?,
                    author: Some(Author::stored(row.get(2)?)),
                    name: row.get(3)?,
                    id: uint(row, 4)?,
                    on: Some(true),
                    ..Event::default()
                };
                Ok(change)
            })
            .map_err(|e| e.to_string())?;
        let at: HashMap<u64, usize> = (events.iter().enumerate())
            .map(|(i, e)| (e.id, i))
            .collect();
        for reaction in rows {
            let reaction = reaction.map_err(|e| e.to_string())?;
            if let Some(&i) = reaction.target.and_then(|target| at.get(&target)) {
                events[i] = events[i].amended_by(&reaction);
            }
        }
    }
    Ok(events
        .into_iter()
        .map(|event| {
            Recorded::new(Event {
                room: room.to_string(),
                ..event
            })
        })
        .collect())
}

#[cfg(test)]
mod tests;
