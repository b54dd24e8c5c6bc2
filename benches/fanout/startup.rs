//! `startup`: a server started on a store already holding `rooms` rooms
//! (each with one participant, its session, a join and two messages:
//! written straight into the SQLite file, as many roomcasts before would
//! have left it), then: how long until it listens, its resident memory,
//! and the latency of the first touch of rooms nobody has asked for since
//! the start (a participant's history read, which reads the session and
//! the room from the store) and of a second touch. With `--redis`, the
//! rooms are room records in Redis (no history: a node reads nothing of
//! a room before it is asked for, so what they hold does not change the
//! start), and the touch is a room page (a stranger's, answered 303 once
//! the room is looked up).

use std::time::Instant;

use super::cluster::Redis;
use super::load::{bearer, percentiles_ms, Poster};
use super::{round, Row, Target, LIFTED};

/// Rooms touched after the start, one after another.
const TOUCHES: usize = 1000;

/// The `i`-th code: every four-letter code first, then five letters.
fn code(i: usize) -> String {
    let short = 26usize.pow(4);
    let (mut n, len) = if i < short { (i, 4) } else { (i - short, 5) };
    let mut letters = vec![b'A'; len];
    for letter in letters.iter_mut().rev() {
        *letter = b'A' + (n % 26) as u8;
        n /= 26;
    }
    String::from_utf8(letters).expect("letters")
}

/// The `i`-th room's participant's session id (and bearer token).
fn session(i: usize) -> String {
    format!(
        "{:032x}",
        0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
    )
}

/// The rooms touched: spread over all of them, each once.
fn touched(rooms: usize) -> impl Iterator<Item = usize> {
    let step = (rooms / TOUCHES).max(1);
    (0..rooms).step_by(step).take(TOUCHES)
}

/// Writes `rooms` rooms into a new roomcast database at `path`.
fn fill_sqlite(path: &str, rooms: usize) -> rusqlite::Result<()> {
    // Made by roomcast itself, so the schema is the current one.
    drop(roomcast::store::sqlite::SqliteStore::open(path).expect("a new database"));
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    let now = roomcast::store::now_ms() as i64;
    {
        let mut room = tx.prepare(
            "INSERT INTO rooms (code, created_ms, last_activity_ms, last_id, messages, notices)
             VALUES (?1, ?2, ?2, 3, 2, 1)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO events (room, id, kind, name, text, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut session_row = tx.prepare("INSERT INTO sessions (id, used_ms) VALUES (?1, ?2)")?;
        let mut participant = tx.prepare(
            "INSERT INTO participants (session, room, name, watch) VALUES (?1, ?2, ?3, 0)",
        )?;
        let ts = "2026-12-01T12:00:00.000Z";
        for i in 0..rooms {
            let (code, id) = (code(i), session(i));
            // Active within the last day, so none ends during the run.
            let at = now - (i as i64 % 86_400_000);
            room.execute(rusqlite::params![code, at])?;
            event.execute(rusqlite::params![code, 1, "join", "al", None::<&str>, ts])?;
            for n in [2, 3] {
                let text = format!("message {n} of room {code}");
                event.execute(rusqlite::params![code, n, "message", "al", text, ts])?;
            }
            session_row.execute(rusqlite::params![id, now])?;
            participant.execute(rusqlite::params![id, code, "al"])?;
        }
    }
    tx.commit()
}

/// Writes `rooms` room records into Redis, as create.lua makes them.
fn fill_redis(url: &str, rooms: usize) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection()?;
    // As a node that ran before leaves it: the names are filed under the
    // current key (else the start would first look through every room's).
    let version = roomcast::model::NAME_KEY_VERSION;
    redis::cmd("SET")
        .arg("roomcast:names-key")
        .arg(version)
        .query::<()>(&mut conn)?;
    let now = roomcast::store::now_ms();
    let ttl_ms = 3_600_000u64;
    for chunk in (0..rooms).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let room = format!("roomcast:{{{}}}", code(i));
            pipe.cmd("SET")
                .arg(&room)
                .arg(format!("{now}\t"))
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            let ends = format!("{}\t0", now + ttl_ms);
            pipe.cmd("SET")
                .arg(format!("{room}:ends"))
                .arg(ends)
                .arg("PX")
                .arg(2 * ttl_ms)
                .ignore();
        }
        pipe.query::<()>(&mut conn)?;
    }
    Ok(())
}

/// The start, the memory and the touches of one store of `rooms` rooms.
pub async fn startup(name: &str, binary: &str, rooms: usize, redis: bool) -> Row {
    let mut row = Row::new(name);
    row.figure("rooms", rooms);
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("start.db");
    let db = db.to_str().expect("a UTF-8 path").to_string();
    let mut flags: Vec<String> = LIFTED.iter().map(|f| f.to_string()).collect();
    let filled = Instant::now();
    let _redis = if redis {
        let server = match Redis::for_row(name) {
            Ok(server) => server,
            Err(skipped) => return skipped,
        };
        if let Err(err) = fill_redis(&server.url(), rooms) {
            row.failures.push(format!("filling Redis: {err}"));
            return row;
        }
        flags.extend(["--redis".to_string(), server.url()]);
        Some(server)
    } else {
        if let Err(err) = fill_sqlite(&db, rooms) {
            row.failures.push(format!("filling the database: {err}"));
            return row;
        }
        flags.extend(["--db".to_string(), db]);
        None
    };
    row.figure("fill_s", round(filled.elapsed().as_secs_f64()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let begun = Instant::now();
    let server = Target::start(binary, &flags);
    row.figure("start_ms", round(begun.elapsed().as_secs_f64() * 1000.0));
    if let Some(kib) = server.rss_kib() {
        row.figure("rss_mb", round(kib as f64 / 1024.0));
    }
    let mut poster = Poster::connect(server.addr).await.expect("connect");
    for pass in ["cold", "warm"] {
        let mut latencies = Vec::with_capacity(TOUCHES);
        let mut failures = 0;
        for i in touched(rooms) {
            let code = code(i);
            let begun = Instant::now();
            let answer = if redis {
                let page = format!("/rooms/{code}");
                let reply = poster.request("GET", &page, "", "text/html", "").await;
                reply.map(|r| r.status == 303)
            } else {
                let read = format!("/rooms/{code}/messages?limit=50");
                let token = bearer(&session(i));
                let reply = poster
                    .request("GET", &read, &token, "application/json", "")
                    .await;
                reply.map(|r| r.status == 200 && r.body.starts_with(b"["))
            };
            match answer {
                Ok(true) => latencies.push(begun.elapsed().as_micros() as u32),
                _ => failures += 1,
            }
        }
        let (p50, p99, _) = percentiles_ms(&mut latencies);
        row.figure(&format!("{pass}_p50_ms"), round(p50));
        row.figure(&format!("{pass}_p99_ms"), round(p99));
        if failures > 0 {
            row.failures
                .push(format!("{failures} {pass} touches failed"));
        }
    }
    if let Some(kib) = server.rss_kib() {
        row.figure("rss_after_mb", round(kib as f64 / 1024.0));
    }
    row
}
