//! `soak`: people join, talk, leave, reconnect and flood at random for a
//! while against the real binary, each from an address of their own (the
//! server trusts the load side as its proxy). Then:
//! - every message that got a 201 is in its room's history, with its text,
//!   and nothing else is;
//! - a silent witness that followed each room from its creation got every
//!   one of them once and in order, and so did every visit in the span it
//!   was there;
//! - once everyone has gone, /metrics counts no rooms and no streams, and
//!   the server's RSS is back within 10% of what it was before the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::load::{bearer, id_of, percentiles_ms, Goal, Poster, Reply, Seen, Subscriber};
use super::{round, Row, Target};

/// The shape of one soak run.
#[derive(Debug, Clone)]
pub struct Soak {
    pub duration: Duration,
    /// People coming and going, each its own visitor.
    pub people: usize,
    /// Rooms open at once; people create rooms while there are fewer.
    pub rooms: usize,
    /// How long one visit lasts, and the pause before the next, in seconds.
    visit_s: Range<f64>,
    away_s: Range<f64>,
    /// How long a room takes new people before it is left to expire.
    room_life_s: Range<f64>,
    /// The server's `--room-ttl`.
    room_ttl_s: f64,
}

impl Soak {
    pub fn full(minutes: f64) -> Soak {
        Soak {
            duration: Duration::from_secs_f64(minutes * 60.0),
            people: 300,
            rooms: 30,
            visit_s: 5.0..60.0,
            away_s: 1.0..10.0,
            room_life_s: 60.0..300.0,
            room_ttl_s: 10.0,
        }
    }

    pub fn quick() -> Soak {
        Soak {
            duration: Duration::from_secs(4),
            people: 24,
            rooms: 4,
            visit_s: 0.5..2.0,
            away_s: 0.1..0.5,
            room_life_s: 1.0..3.0,
            room_ttl_s: 1.0,
        }
    }

    /// The server's flags: default limits per visitor, visitors told apart
    /// by X-Forwarded-For from the load side, history long enough to hold
    /// every message a room gets in its life.
    pub fn server_flags(&self) -> Vec<String> {
        [
            "--trusted-proxy",
            "127.0.0.1",
            "--history",
            "50000",
            "--room-ttl",
            &self.room_ttl_s.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// Texts people type, after the µs stamp that times delivery.
const NOISE: &[&str] = &[
    "",
    " hello",
    " héllo wörld",
    " 你好 🎉",
    " two\nlines",
    " \"quoted\" <b>&amp;</b>",
    " tab\there",
    " data: id: event: fake",
];

/// What the run counted, shared by every task.
#[derive(Default)]
struct Tally {
    visits: AtomicU64,
    accepted: AtomicU64,
    posts_limited: AtomicU64,
    floods: AtomicU64,
    streams_limited: AtomicU64,
    rooms_limited: AtomicU64,
    bad_input_refused: AtomicU64,
    resumes: AtomicU64,
    witness_resumes: AtomicU64,
    rooms_created: AtomicU64,
    rooms_checked: AtomicU64,
    failures: Mutex<Vec<String>>,
    latencies_us: Mutex<Vec<u32>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 20 {
            eprintln!("soak: {what}");
            failures.push(what);
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// One room as the load side knows it.
struct Room {
    /// Takes no new people once set; checked once nobody is inside.
    closing: bool,
    present: usize,
    close_at: Instant,
    /// Messages that got a 201: (id, text).
    accepted: Vec<(u64, String)>,
    /// What each finished visit saw.
    visits: Vec<Seen>,
    witness: Option<Witness>,
    /// The witness's Authorization line, which the checks read history by.
    reader: String,
}

struct Witness {
    goal: Arc<Goal>,
    following: tokio::task::JoinHandle<Subscriber>,
}

/// Everything the tasks share.
struct Town {
    addr: SocketAddr,
    epoch: Instant,
    soak: Soak,
    end: Instant,
    rooms: Mutex<HashMap<String, Room>>,
    tally: Tally,
}

impl Town {
    /// Counts a person into an open room, at random.
    fn enter_any(&self, rng: &mut fastrand::Rng) -> Option<String> {
        let mut rooms = self.rooms.lock().unwrap();
        let open: Vec<&String> = rooms
            .iter()
            .filter(|(_, r)| !r.closing)
            .map(|(c, _)| c)
            .collect();
        let code = (*open.get(rng.usize(..open.len().max(1)))?).clone();
        rooms.get_mut(&code).unwrap().present += 1;
        Some(code)
    }

    fn short_of_rooms(&self) -> bool {
        let rooms = self.rooms.lock().unwrap();
        rooms.values().filter(|r| !r.closing).count() < self.soak.rooms
    }

    /// Starts the witness of a room just created, then counts its creator in.
    async fn found(&self, code: &str, rng: &mut fastrand::Rng) -> bool {
        let n = self.tally.rooms_created.fetch_add(1, Relaxed);
        let xff = forwarded_for(0xff_0000 | n as u32);
        let joined = match Poster::connect(self.addr).await {
            Ok(mut joiner) => joiner.join(code, "witness", true, &xff).await,
            Err(err) => Err(err),
        };
        let reader = match joined {
            Ok(token) => bearer(&token),
            Err(err) => {
                self.tally.fail(format!("witness of {code}: {err}"));
                return false;
            }
        };
        let headers = format!("{xff}{reader}");
        let mut witness = match Subscriber::connect_with(self.addr, code, headers, self.epoch).await
        {
            Ok(witness) => witness,
            Err(err) => {
                self.tally.fail(format!("witness of {code}: {err}"));
                return false;
            }
        };
        let goal = Goal::new();
        let (epoch, until) = (self.epoch, self.end + Duration::from_secs(600));
        let following = {
            let goal = goal.clone();
            tokio::spawn(async move {
                witness.follow_until(epoch, &goal, until).await;
                witness
            })
        };
        let life = Duration::from_secs_f64(between(rng, &self.soak.room_life_s));
        let room = Room {
            closing: false,
            present: 1,
            close_at: Instant::now() + life,
            accepted: Vec::new(),
            visits: Vec::new(),
            witness: Some(Witness { goal, following }),
            reader,
        };
        self.rooms.lock().unwrap().insert(code.to_string(), room);
        true
    }

    fn accepted(&self, code: &str, id: u64, text: String) {
        let mut rooms = self.rooms.lock().unwrap();
        rooms.get_mut(code).unwrap().accepted.push((id, text));
    }

    fn leave(&self, code: &str, seen: Seen) {
        let mut rooms = self.rooms.lock().unwrap();
        let room = rooms.get_mut(code).unwrap();
        room.present -= 1;
        room.visits.push(seen);
    }

    /// Closes rooms whose time has come (all of them after the run) and
    /// returns the closed rooms nobody is in any more, to be checked.
    fn take_finished(&self, now: Instant) -> Vec<(String, Room)> {
        let mut rooms = self.rooms.lock().unwrap();
        for room in rooms.values_mut() {
            room.closing |= now >= room.close_at || now >= self.end;
        }
        let done: Vec<String> = rooms
            .iter()
            .filter(|(_, r)| r.closing && r.present == 0)
            .map(|(c, _)| c.clone())
            .collect();
        done.into_iter()
            .map(|c| {
                let room = rooms.remove(&c).unwrap();
                (c, room)
            })
            .collect()
    }
}

/// A number of seconds in `range`, at random.
fn between(rng: &mut fastrand::Rng, range: &Range<f64>) -> f64 {
    range.start + rng.f64() * (range.end - range.start)
}

/// An X-Forwarded-For line naming visitor `n` at an address of its own.
fn forwarded_for(n: u32) -> String {
    let [_, a, b, c] = (n + 1).to_be_bytes();
    format!("X-Forwarded-For: 10.{a}.{b}.{c}\r\n")
}

/// Runs the soak against `server` (started with [`Soak::server_flags`]).
pub async fn soak(server: &Target, soak: Soak) -> Row {
    let mut row = Row::new("soak");
    row.figure("minutes", round(soak.duration.as_secs_f64() / 60.0));
    row.figure("people", soak.people);
    let mut probe = Poster::connect(server.addr).await.expect("connect");
    if let Some(cold) = server.rss_kib() {
        row.figure("rss_cold_mb", round(cold as f64 / 1024.0));
    }
    // A warm-up of the same shape first (a minute at most), so the baseline
    // holds what any server that has served such a crowd holds, all of it
    // bounded: code paged in, SQLite's page cache (2 MB), the allocator's
    // per-thread caches. What the long run adds on top is what it left.
    let warm_up = Soak {
        duration: soak.duration.min(Duration::from_secs(60)),
        ..soak.clone()
    };
    let (town, _) = live(server, warm_up, 1_000_000).await;
    for failure in town.tally.failures.lock().unwrap().iter() {
        row.failures.push(format!("warm-up: {failure}"));
    }
    drain(&mut probe, &soak, &mut row).await;
    let baseline = server.rss_kib();
    let (town, peak) = live(server, soak.clone(), 0).await;
    let drained_s = drain(&mut probe, &soak, &mut row).await;
    row.figure("drained_s", drained_s);
    judge_memory(&mut row, baseline, peak, server.rss_kib());
    report(&mut row, &town.tally);
    row
}

/// People come and go for the soak's duration; returns their town once
/// each has left and each room has been checked, and the peak RSS.
async fn live(server: &Target, soak: Soak, first_person: u32) -> (Arc<Town>, u64) {
    let started = Instant::now();
    let town = Arc::new(Town {
        addr: server.addr,
        epoch: started,
        end: started + soak.duration,
        soak,
        rooms: Mutex::new(HashMap::new()),
        tally: Tally::default(),
    });
    let people: Vec<_> = (0..town.soak.people as u32)
        .map(|n| tokio::spawn(person(first_person + n, town.clone())))
        .collect();
    let checker = tokio::spawn(check_rooms(town.clone()));
    let mut peak = 0;
    while Instant::now() < town.end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(server.rss_kib().unwrap_or(0));
    }
    for person in people {
        person.await.expect("person task");
    }
    checker.await.expect("checker task");
    (town, peak)
}

/// Waits for the server to forget every room (they expire after their TTL
/// once nobody is in them) and close every stream, then for its allocator
/// to hand back what was freed. Returns the seconds it took to drain.
async fn drain(probe: &mut Poster, soak: &Soak, row: &mut Row) -> f64 {
    let started = Instant::now();
    let limit = Duration::from_secs_f64(soak.room_ttl_s) * 2 + Duration::from_secs(30);
    let (mut rooms, mut streams) = (None, None);
    while started.elapsed() < limit {
        (rooms, streams) = gauges(probe).await;
        if rooms == Some(0) && streams == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = round(started.elapsed().as_secs_f64());
    if (rooms, streams) != (Some(0), Some(0)) {
        row.failures.push(format!(
            "after everyone left, /metrics shows rooms {rooms:?} and streams {streams:?}"
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    took
}

/// `roomcast_rooms` and `roomcast_streams_open` from /metrics.
async fn gauges(probe: &mut Poster) -> (Option<u64>, Option<u64>) {
    let Ok(reply) = probe.request("GET", "/metrics", "", "text/plain", "").await else {
        return (None, None);
    };
    let text = String::from_utf8_lossy(&reply.body);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    (gauge("roomcast_rooms"), gauge("roomcast_streams_open"))
}

fn judge_memory(row: &mut Row, baseline: Option<u64>, peak: u64, after: Option<u64>) {
    let (Some(baseline), Some(after)) = (baseline, after) else {
        println!("soak: the server is not our child; its memory is not judged");
        return;
    };
    row.figure("rss_baseline_mb", round(baseline as f64 / 1024.0));
    row.figure("rss_peak_mb", round(peak as f64 / 1024.0));
    row.figure("rss_after_mb", round(after as f64 / 1024.0));
    if after as f64 > baseline as f64 * 1.10 {
        row.failures.push(format!(
            "RSS {after} KiB after everyone left, more than 10% over the {baseline} KiB baseline"
        ));
    }
}

fn report(row: &mut Row, tally: &Tally) {
    let count = |c: &AtomicU64| c.load(Relaxed);
    row.figure("visits", count(&tally.visits));
    row.figure("rooms", count(&tally.rooms_created));
    row.figure("rooms_checked", count(&tally.rooms_checked));
    row.figure("accepted", count(&tally.accepted));
    row.figure("floods", count(&tally.floods));
    row.figure("posts_429", count(&tally.posts_limited));
    row.figure("streams_429", count(&tally.streams_limited));
    row.figure("rooms_429", count(&tally.rooms_limited));
    row.figure("bad_input_4xx", count(&tally.bad_input_refused));
    row.figure("resumes", count(&tally.resumes));
    row.figure("witness_resumes", count(&tally.witness_resumes));
    let mut latencies = std::mem::take(&mut *tally.latencies_us.lock().unwrap());
    let (p50, p99, max) = percentiles_ms(&mut latencies);
    row.figure("witness_p50_ms", round(p50));
    row.figure("witness_p99_ms", round(p99));
    row.figure("witness_max_ms", round(max));
    if count(&tally.rooms_checked) < count(&tally.rooms_created) {
        row.failures.push("some rooms were never checked".into());
    }
    row.failures
        .extend(tally.failures.lock().unwrap().iter().cloned());
}

/// Checks each room once it is closed and empty: history, witness, visits.
/// Ends when the run is over and every room has been checked.
async fn check_rooms(town: Arc<Town>) {
    let mut probe = Poster::connect(town.addr).await.expect("connect");
    loop {
        let now = Instant::now();
        for (code, room) in town.take_finished(now) {
            check_room(&town, &mut probe, &code, room).await;
        }
        if now >= town.end && town.rooms.lock().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn check_room(town: &Town, probe: &mut Poster, code: &str, mut room: Room) {
    let tally = &town.tally;
    Tally::add(&tally.rooms_checked, 1);
    room.accepted.sort_unstable_by_key(|(id, _)| *id);
    let last = room.accepted.last().map_or(0, |(id, _)| *id);
    // The witness: every accepted message once, in order.
    if let Some(witness) = room.witness.take() {
        witness.goal.finish(last);
        let mut witness = witness.following.await.expect("witness task");
        let seen = witness.seen().clone();
        if seen.received != room.accepted.len() as u64 || seen.duplicates + seen.out_of_order > 0 {
            tally.fail(format!(
                "room {code}: witness got {} of {} (dup {}, reordered {}, errors {})",
                seen.received,
                room.accepted.len(),
                seen.duplicates,
                seen.out_of_order,
                seen.errors
            ));
        }
        Tally::add(&tally.witness_resumes, seen.reconnects as u64);
        tally
            .latencies_us
            .lock()
            .unwrap()
            .extend(std::mem::take(&mut witness.seen_mut().latencies_us));
    }
    // History: exactly the accepted messages, with their texts, read a
    // page at a time (at most 500 events a read).
    let mut stored: Vec<(u64, String)> = Vec::new();
    let mut since = 0;
    loop {
        let path = format!("/rooms/{code}/messages?since={since}&limit=500");
        let page = match probe
            .request("GET", &path, &room.reader, "text/plain", "")
            .await
        {
            Ok(Reply {
                status: 200, body, ..
            }) => serde_json::from_slice::<Vec<Value>>(&body).unwrap_or_default(),
            Ok(reply) => {
                tally.fail(format!("room {code}: history answered {}", reply.status));
                return;
            }
            Err(err) => {
                tally.fail(format!("room {code}: history: {err}"));
                return;
            }
        };
        let Some(last) = page.last().and_then(|e| e["id"].as_u64()) else {
            break;
        };
        since = last;
        stored.extend(page.iter().filter(|e| e["kind"] == "message").map(|e| {
            let text = e["text"].as_str().unwrap_or_default().to_string();
            (e["id"].as_u64().unwrap_or(0), text)
        }));
    }
    if stored != room.accepted {
        let missing = room.accepted.iter().filter(|m| !stored.contains(m)).count();
        tally.fail(format!(
            "room {code}: history holds {} messages, {} were accepted, {missing} of those missing or changed",
            stored.len(),
            room.accepted.len()
        ));
    }
    // Each visit: every accepted message between its first and its last.
    for seen in &room.visits {
        let span = room
            .accepted
            .iter()
            .filter(|(id, _)| (seen.first_id..=seen.last_id).contains(id))
            .count() as u64;
        if seen.received > 0 && seen.received != span || seen.duplicates + seen.out_of_order > 0 {
            tally.fail(format!(
                "room {code}: a visit got {} of the {span} messages in its span (dup {}, reordered {})",
                seen.received, seen.duplicates, seen.out_of_order
            ));
        }
    }
}

/// One person: visits rooms until the run ends.
async fn person(n: u32, town: Arc<Town>) {
    let mut rng = fastrand::Rng::with_seed(n as u64);
    let xff = forwarded_for(n);
    let Ok(mut poster) = Poster::connect(town.addr).await else {
        town.tally.fail(format!("person {n} cannot connect"));
        return;
    };
    // Arrivals spread over the first seconds.
    tokio::time::sleep(Duration::from_secs_f64(between(
        &mut rng,
        &town.soak.away_s,
    )))
    .await;
    let mut visit = 0;
    while Instant::now() < town.end {
        visit += 1;
        let name = format!("p{n}v{visit}");
        if let Some((code, cookie)) = enter(&town, &mut poster, &mut rng, &name, &xff).await {
            Tally::add(&town.tally.visits, 1);
            let headers = format!("Cookie: {cookie}\r\n{xff}");
            let mut visit = Visit {
                town: &town,
                poster: &mut poster,
                rng: &mut rng,
                code: &code,
                name: &name,
                headers: &headers,
            };
            let seen = visit.stay().await;
            // Done: out of the room, so the name is free for someone else.
            let path = format!("/rooms/{code}/leave");
            match poster
                .request("POST", &path, &headers, "text/plain", "")
                .await
            {
                Ok(Reply { status: 204, .. }) => {}
                Ok(reply) => town
                    .tally
                    .fail(format!("leaving {code} answered {}", reply.status)),
                Err(err) => town.tally.fail(format!("leaving {code}: {err}")),
            }
            town.leave(&code, seen);
        }
        let away = between(&mut rng, &town.soak.away_s);
        tokio::time::sleep(Duration::from_secs_f64(away)).await;
    }
}

/// Through the home form: creates a room when the town is short of them,
/// else joins one. Returns the room and the session cookie; the person is
/// counted in.
async fn enter(
    town: &Town,
    poster: &mut Poster,
    rng: &mut fastrand::Rng,
    name: &str,
    xff: &str,
) -> Option<(String, String)> {
    if town.short_of_rooms() {
        let form = format!("name={name}&action=create");
        match home_form(town, poster, xff, &form).await {
            Some(Reply {
                status: 303,
                cookie: Some(cookie),
                location: Some(location),
                ..
            }) => {
                let code = location.trim_start_matches("/rooms/").to_string();
                return town.found(&code, rng).await.then_some((code, cookie));
            }
            Some(Reply { status: 429, .. }) => Tally::add(&town.tally.rooms_limited, 1),
            Some(reply) => town
                .tally
                .fail(format!("creating a room answered {}", reply.status)),
            None => return None,
        }
    }
    let code = town.enter_any(rng)?;
    let form = format!("name={name}&code={code}&action=join");
    match home_form(town, poster, xff, &form).await {
        Some(Reply {
            status: 303,
            cookie: Some(cookie),
            ..
        }) => Some((code, cookie)),
        other => {
            if let Some(reply) = other {
                town.tally
                    .fail(format!("joining {code} answered {}", reply.status));
            }
            town.leave(&code, Seen::default());
            None
        }
    }
}

async fn home_form(town: &Town, poster: &mut Poster, xff: &str, form: &str) -> Option<Reply> {
    let content = "application/x-www-form-urlencoded";
    match poster.request("POST", "/", xff, content, form).await {
        Ok(reply) => Some(reply),
        Err(err) => {
            town.tally.fail(format!("home form: {err}"));
            None
        }
    }
}

/// One person in one room: what everything they do there needs.
struct Visit<'a> {
    town: &'a Town,
    poster: &'a mut Poster,
    rng: &'a mut fastrand::Rng,
    code: &'a str,
    name: &'a str,
    /// The session cookie and the person's address, as header lines.
    headers: &'a str,
}

impl Visit<'_> {
    /// Follows the room's stream while talking, now and then drops the stream
    /// and resumes it, floods, or sends what the server must refuse.
    async fn stay(&mut self) -> Seen {
        let (town, code, name, headers) = (self.town, self.code, self.name, self.headers);
        let epoch = town.epoch;
        let mut stream =
            match Subscriber::connect_with(town.addr, code, headers.to_string(), epoch).await {
                Ok(stream) => stream,
                Err(err) => {
                    town.tally
                        .fail(format!("{name} cannot follow {code}: {err}"));
                    return Seen::default();
                }
            };
        let length = Duration::from_secs_f64(between(self.rng, &town.soak.visit_s));
        let leave_at = (Instant::now() + length).min(town.end);
        let drop_at = self
            .rng
            .bool()
            .then(|| (Instant::now() + length.mul_f64(self.rng.f64())).min(leave_at));
        if drop_at.is_some() {
            Tally::add(&town.tally.resumes, 1);
        }
        let reading = tokio::spawn(async move {
            let never = Goal::new();
            if let Some(drop_at) = drop_at {
                stream.follow_until(epoch, &never, drop_at).await;
                if stream.resume().await.is_err() {
                    return None;
                }
            }
            stream.follow_until(epoch, &never, leave_at).await;
            Some(stream)
        });
        while Instant::now() < leave_at {
            let pause = Duration::from_secs_f64(between(self.rng, &(0.2..3.0)));
            tokio::time::sleep_until((Instant::now() + pause).min(leave_at).into()).await;
            if Instant::now() >= leave_at {
                break;
            }
            match self.rng.u32(..100) {
                0..4 => self.flood().await,
                4..7 => self.refused().await,
                7..9 => self.crowd().await,
                _ => {
                    self.say().await;
                }
            }
        }
        match reading.await.expect("reading task") {
            Some(stream) => stream.seen().clone(),
            None => {
                town.tally
                    .fail(format!("{name} could not resume in {code}"));
                Seen::default()
            }
        }
    }

    /// POSTs a JSON body to the room's messages as this person.
    async fn post(&mut self, body: &str) -> std::io::Result<Reply> {
        let path = format!("/rooms/{}/messages", self.code);
        let json = "application/json";
        self.poster
            .request("POST", &path, self.headers, json, body)
            .await
    }

    /// Posts one message; true if it was accepted.
    async fn say(&mut self) -> bool {
        let (town, code, name) = (self.town, self.code, self.name);
        let sent_us = town.epoch.elapsed().as_micros() as u64;
        let text = format!("{sent_us:0>20}{}", NOISE[self.rng.usize(..NOISE.len())]);
        let body = serde_json::json!({ "name": name, "text": text }).to_string();
        match self.post(&body).await {
            Ok(Reply {
                status: 201, body, ..
            }) => match id_of(&body) {
                Some(id) => {
                    Tally::add(&town.tally.accepted, 1);
                    town.accepted(code, id, text);
                    return true;
                }
                None => town.tally.fail(format!("a 201 without an id: {body:?}")),
            },
            Ok(Reply { status: 429, .. }) => Tally::add(&town.tally.posts_limited, 1),
            Ok(reply) => town
                .tally
                .fail(format!("post in {code} answered {}", reply.status)),
            Err(err) => town.tally.fail(format!("post in {code}: {err}")),
        }
        false
    }

    /// Forty posts at once: more than the burst allows, so some must get 429.
    async fn flood(&mut self) {
        let (town, code, name) = (self.town, self.code, self.name);
        Tally::add(&town.tally.floods, 1);
        let mut accepted = 0;
        for _ in 0..40 {
            accepted += self.say().await as u32;
        }
        if accepted == 40 {
            town.tally
                .fail(format!("{name} flooded {code} and no post was refused"));
        }
    }

    /// Posts the server must refuse, each changing nothing (the room checks
    /// see to that): an empty text, a body that is not JSON, and a text
    /// too long.
    async fn refused(&mut self) {
        let (town, name) = (self.town, self.name);
        let bad = [
            serde_json::json!({ "name": name, "text": "" }).to_string(),
            "{\"name\":".to_string(),
            serde_json::json!({ "name": name, "text": "x".repeat(2001) }).to_string(),
        ];
        for body in bad {
            match self.post(&body).await {
                Ok(Reply {
                    status: 400 | 422 | 429,
                    ..
                }) => Tally::add(&town.tally.bad_input_refused, 1),
                Ok(reply) => town
                    .tally
                    .fail(format!("bad post {body:?} answered {}", reply.status)),
                Err(err) => town.tally.fail(format!("bad post: {err}")),
            }
        }
    }

    /// Opens more streams than one visitor may hold, then closes them.
    async fn crowd(&self) {
        let (town, code, headers) = (self.town, self.code, self.headers);
        let mut open = Vec::new();
        let mut refused = 0;
        for _ in 0..24 {
            match Subscriber::connect_with(town.addr, code, headers.to_string(), town.epoch).await {
                Ok(stream) => open.push(stream),
                Err(err) if err.to_string().contains(" 429") => refused += 1,
                Err(err) => town.tally.fail(format!("an extra stream on {code}: {err}")),
            }
        }
        Tally::add(&town.tally.streams_limited, refused);
        if refused == 0 {
            town.tally.fail(format!(
                "25 streams on {code} from one visitor and none refused"
            ));
        }
    }
}
