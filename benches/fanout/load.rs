//! The load side: SSE subscribers and posters on raw keep-alive TCP, so the
//! generator costs little next to the server it measures.
//!
//! Every message's text is the time it was meant to be sent, in µs since
//! the run's epoch; a subscriber reads it back to get POST→receive latency.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Instant;

use memchr::memmem;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The tokens this load side joined each room it made with (see
/// [`Poster::create_room`]): posters speak as the member "bench", and
/// every subscriber reads as the watcher "bench watcher", so thousands of
/// streams are one participant and nobody is announced.
static JOINED: LazyLock<Mutex<std::collections::HashMap<String, Joined>>> =
    LazyLock::new(Default::default);

#[derive(Clone)]
struct Joined {
    speaker: String,
    watcher: String,
}

/// The Authorization line to use in `code`: the speaker's or the
/// watcher's; none for a room without tokens (the floor's, which is not
/// roomcast and answers every request alike).
fn credential(code: &str, speaker: bool) -> String {
    let rooms = JOINED.lock().unwrap();
    rooms.get(code).map_or_else(String::new, |joined| {
        bearer(if speaker {
            &joined.speaker
        } else {
            &joined.watcher
        })
    })
}

/// An Authorization header line for `token`.
pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Distinct message ids received.
    pub received: u64,
    /// The first and the last of them (0 before any).
    pub first_id: u64,
    pub last_id: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Latency of each message, µs from its intended send time.
    pub latencies_us: Vec<u32>,
    /// Times the server closed the stream and it resumed by Last-Event-ID.
    pub reconnects: u32,
    pub errors: u32,
}

/// When a subscriber may stop: once it has the last id posted, which is
/// known (and announced) when posting is done.
///
/// Each follower waits on a `Notify` of its own: a watch shared by a
/// thousand followers would have every one of them take its lock on every
/// read, and the load generator would measure itself.
pub struct Goal {
    /// The last id posted; `u64::MAX` until it is known.
    last: AtomicU64,
    waiting: Mutex<Vec<Weak<Notify>>>,
}

impl Goal {
    pub fn new() -> Arc<Goal> {
        Arc::new(Goal {
            last: AtomicU64::new(u64::MAX),
            waiting: Mutex::new(Vec::new()),
        })
    }

    pub fn finish(&self, last: u64) {
        self.last.store(last, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap());
        for follower in waiting.iter().filter_map(Weak::upgrade) {
            // Kept as a permit if the follower is not waiting right now.
            follower.notify_one();
        }
    }

    fn reached(&self, id: u64) -> bool {
        let last = self.last.load(Ordering::SeqCst);
        last != u64::MAX && id >= last
    }

    /// Registers a follower to be told when the goal is known.
    fn watch(&self, follower: &Arc<Notify>) {
        self.waiting.lock().unwrap().push(Arc::downgrade(follower));
    }
}

/// What the parser found in the stream.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Members,
    /// `room`: on a multiplexed stream, whose `id:` is a cursor, the room
    /// the message is in (its id is then the JSON's).
    Message {
        id: u64,
        sent_us: u64,
        room: Option<[u8; 4]>,
    },
}

/// An open SSE stream on a room, or on several (`GET /events?rooms=`).
pub struct Subscriber {
    addr: SocketAddr,
    /// `/rooms/CODE/events`, or `/events?rooms=A,B`.
    path: String,
    /// On a multiplexed stream: each room and the last id seen in it.
    rooms: Vec<([u8; 4], u64)>,
    /// Extra request header lines, each ending in CRLF.
    headers: String,
    reader: BufReader<TcpStream>,
    parser: Parser,
    seen: Seen,
    buffer: Vec<u8>,
}

impl Subscriber {
    /// Connects as the room's watcher (see [`JOINED`]) and waits for the
    /// opening `members` frame, so the server has counted this stream
    /// before anything is posted.
    pub async fn connect(addr: SocketAddr, code: &str, epoch: Instant) -> io::Result<Subscriber> {
        Subscriber::connect_with(addr, code, credential(code, false), epoch).await
    }

    /// [`Subscriber::connect`] sending `headers` (CRLF-ended lines), on
    /// this request and on every resume.
    pub async fn connect_with(
        addr: SocketAddr,
        code: &str,
        headers: String,
        epoch: Instant,
    ) -> io::Result<Subscriber> {
        let path = format!("/rooms/{code}/events");
        Subscriber::open(addr, path, Vec::new(), headers, epoch).await
    }

    /// One multiplexed stream on `codes` (4 letters each) with `headers`
    /// (a credential that joined them all); waits for every room's
    /// `members` frame.
    pub async fn connect_multiplexed(
        addr: SocketAddr,
        codes: &[String],
        headers: String,
        epoch: Instant,
    ) -> io::Result<Subscriber> {
        let path = format!("/events?rooms={}", codes.join(","));
        let rooms = codes
            .iter()
            .map(|code| (code.as_bytes().try_into().expect("a 4-letter code"), 0))
            .collect();
        Subscriber::open(addr, path, rooms, headers, epoch).await
    }

    async fn open(
        addr: SocketAddr,
        path: String,
        rooms: Vec<([u8; 4], u64)>,
        headers: String,
        epoch: Instant,
    ) -> io::Result<Subscriber> {
        let mut subscriber = Subscriber {
            addr,
            reader: open_stream(addr, &path, &headers, None).await?,
            path,
            rooms,
            headers,
            parser: Parser::default(),
            seen: Seen::default(),
            buffer: vec![0u8; 8 * 1024],
        };
        subscriber.read_until_members(epoch).await?;
        Ok(subscriber)
    }

    /// Reads until the opening `members` frame of every room followed.
    async fn read_until_members(&mut self, epoch: Instant) -> io::Result<()> {
        let mut members = 0;
        while members < self.rooms.len().max(1) {
            let n = self.reader.read(&mut self.buffer).await?;
            if n == 0 {
                return Err(io::Error::other("stream closed while opening"));
            }
            members += self.absorb(n, epoch);
        }
        Ok(())
    }

    /// Parses `n` fresh bytes; the members frames among them.
    fn absorb(&mut self, n: usize, epoch: Instant) -> usize {
        let now_us = epoch.elapsed().as_micros() as u64;
        let mut members = 0;
        let (seen, rooms) = (&mut self.seen, &mut self.rooms);
        self.parser.feed(&self.buffer[..n], |frame| match frame {
            Frame::Members => members += 1,
            Frame::Message { id, sent_us, room } => {
                // Order is per room: the stream's, or the named room's.
                let last = match room {
                    None => &mut seen.last_id,
                    Some(room) => match rooms.iter_mut().find(|(code, _)| *code == room) {
                        Some((_, last)) => last,
                        None => return, // not a room this stream follows
                    },
                };
                if id <= *last {
                    if id == *last {
                        seen.duplicates += 1;
                    } else {
                        seen.out_of_order += 1;
                    }
                    return;
                }
                *last = id;
                if seen.first_id == 0 {
                    seen.first_id = id;
                }
                seen.last_id = seen.last_id.max(id);
                seen.received += 1;
                let latency = now_us.saturating_sub(sent_us).min(u32::MAX as u64) as u32;
                seen.latencies_us.push(latency);
            }
        });
        members
    }

    /// How far it has got, as its goal counts: the last id of one room,
    /// or the messages received over several.
    fn progress(&self) -> u64 {
        if self.rooms.is_empty() {
            self.seen.last_id
        } else {
            self.seen.received
        }
    }

    /// Reads messages until the goal or the deadline; resumes by
    /// Last-Event-ID when the server closes the stream, as a browser would.
    pub async fn follow(mut self, epoch: Instant, goal: Arc<Goal>, deadline: Instant) -> Seen {
        self.follow_until(epoch, &goal, deadline).await;
        self.seen
    }

    /// [`Subscriber::follow`] that keeps the stream for more.
    pub async fn follow_until(&mut self, epoch: Instant, goal: &Goal, deadline: Instant) {
        // Made once and polled again, not made per read: each would
        // register with a lock and a timer wheel and leave again.
        let announced = Arc::new(Notify::new());
        goal.watch(&announced);
        let mut known = std::pin::pin!(announced.notified());
        let mut expired = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
        loop {
            if goal.reached(self.progress()) {
                return;
            }
            let read = tokio::select! {
                biased;
                read = self.reader.read(&mut self.buffer) => read,
                _ = &mut known => {
                    known.set(announced.notified());
                    continue; // posting is done: check again
                }
                _ = &mut expired => return,
            };
            match read {
                Ok(n) if n > 0 => {
                    self.absorb(n, epoch);
                }
                _ => {
                    self.seen.reconnects += 1;
                    if self.resume().await.is_err() {
                        self.seen.errors += 1;
                        return;
                    }
                }
            }
        }
    }

    /// Drops the connection and opens another after the last id seen (in
    /// each room: a cursor).
    pub async fn resume(&mut self) -> io::Result<()> {
        let since = if self.rooms.is_empty() {
            self.seen.last_id.to_string()
        } else {
            let rooms = self.rooms.iter();
            let parts: Vec<String> = rooms
                .map(|(code, last)| format!("{}:{last}", String::from_utf8_lossy(code)))
                .collect();
            parts.join(",")
        };
        self.reader = open_stream(self.addr, &self.path, &self.headers, Some(since)).await?;
        self.parser = Parser::default();
        Ok(())
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    pub fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }
}

async fn open_stream(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    since: Option<String>,
) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let resume = since.map_or_else(String::new, |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}{resume}\r\n");
    reader.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("stream refused: {}", line.trim())));
    }
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            return Ok(reader);
        }
    }
}

/// Chunked transfer decoding, then SSE lines. It reads every byte a
/// thousand streams receive, so it works on slices, not byte by byte.
#[derive(Default)]
struct Parser {
    chunk: Chunk,
    /// A line begun in an earlier read.
    line: Vec<u8>,
    id: u64,
    /// The `id:` was a cursor: id and room come from the JSON.
    cursor: bool,
    room: Option<[u8; 4]>,
    message: bool,
    members: bool,
    sent_us: Option<u64>,
}

/// Where the chunked framing stands.
enum Chunk {
    /// Reading a size line: the size so far, and whether its digits ended.
    Size(usize, bool),
    /// Inside a chunk, with this many bytes left.
    Data(usize),
    /// Skipping the CRLF after a chunk's data.
    Crlf(u8),
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk::Size(0, false)
    }
}

impl Parser {
    fn feed(&mut self, mut input: &[u8], mut on_frame: impl FnMut(Frame)) {
        while let Some((&byte, rest)) = input.split_first() {
            match &mut self.chunk {
                Chunk::Crlf(left) => {
                    *left -= 1;
                    if *left == 0 {
                        self.chunk = Chunk::default();
                    }
                    input = rest;
                }
                Chunk::Size(size, ended) => {
                    input = rest;
                    match (byte as char).to_digit(16) {
                        _ if byte == b'\n' => {
                            // A zero size ends the body; nothing follows.
                            self.chunk = Chunk::Data(*size);
                        }
                        Some(digit) if !*ended => *size = *size * 16 + digit as usize,
                        _ => *ended = true, // CR or an extension
                    }
                }
                Chunk::Data(left) => {
                    let take = (*left).min(input.len());
                    *left -= take;
                    if *left == 0 {
                        self.chunk = Chunk::Crlf(2);
                    }
                    self.lines(&input[..take], &mut on_frame);
                    input = &input[take..];
                }
            }
        }
    }

    /// Feeds a chunk's payload through line by line.
    fn lines(&mut self, mut data: &[u8], on_frame: &mut impl FnMut(Frame)) {
        while let Some(end) = memchr::memchr(b'\n', data) {
            if self.line.is_empty() {
                self.line_done(&data[..end], on_frame);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&data[..end]);
                self.line_done(&line, on_frame);
                line.clear();
                self.line = line;
            }
            data = &data[end + 1..];
        }
        self.line.extend_from_slice(data);
    }

    fn line_done(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame)) {
        if line.is_empty() {
            if self.members {
                on_frame(Frame::Members);
            } else if let (true, Some(sent_us)) = (self.message, self.sent_us) {
                on_frame(Frame::Message {
                    id: self.id,
                    sent_us,
                    room: self.room,
                });
            }
            (self.members, self.message, self.sent_us) = (false, false, None);
        } else if let Some(id) = line.strip_prefix(b"id:") {
            let id = id.trim_ascii_start();
            self.cursor = id.contains(&b':');
            self.id = digits(id).unwrap_or(0);
        } else if let Some(event) = line.strip_prefix(b"event:") {
            let event = event.trim_ascii_start();
            self.members = event == b"members";
            self.message = event == b"message";
        } else if let Some(data) = line.strip_prefix(b"data:") {
            self.sent_us = sent_time(data);
            if self.cursor {
                self.id = id_of(data).unwrap_or(0);
                self.room = room_of(data);
            }
        }
    }
}

/// A message's text: `sent_us` padded to 100 bytes after the digits, which
/// [`sent_time`] reads back.
pub fn sent_text(sent_us: u64) -> String {
    format!("{sent_us:.<100}")
}

/// The µs in `"text":"<digits>` of an event's JSON.
fn sent_time(json: &[u8]) -> Option<u64> {
    // Built once: a searcher's setup costs more than one short search.
    static TEXT: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\"text\":\""));
    let start = TEXT.find(json)? + TEXT.needle().len();
    digits(&json[start..])
}

/// What the server answered.
pub struct Reply {
    pub status: u16,
    /// `name=value` of a Set-Cookie.
    pub cookie: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection that posts.
pub struct Poster {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Poster {
    pub async fn connect(addr: SocketAddr) -> io::Result<Poster> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Poster {
            addr,
            reader: BufReader::new(stream),
        })
    }

    /// POSTs JSON `body`; returns the status and the response body.
    pub async fn post(&mut self, path: &str, body: &str) -> io::Result<(u16, Vec<u8>)> {
        let reply = self
            .request("POST", path, "", "application/json", body)
            .await?;
        Ok((reply.status, reply.body))
    }

    /// Sends one request with `headers` (CRLF-ended lines) and a body of
    /// `content_type`. A keep-alive connection the server closed while idle
    /// is opened again, once.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        content_type: &str,
        body: &str,
    ) -> io::Result<Reply> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nAccept: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match self.exchange(&request).await {
            Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => {
                *self = Poster::connect(self.addr).await?;
                self.exchange(&request).await
            }
            answered => answered,
        }
    }

    async fn exchange(&mut self, request: &str) -> io::Result<Reply> {
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the server",
            ));
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut cookie, mut location) = (0, None, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("set-cookie") {
                    cookie = value.trim().split(';').next().map(str::to_string);
                } else if name.eq_ignore_ascii_case("location") {
                    location = Some(value.trim().to_string());
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok(Reply {
            status,
            cookie,
            location,
            body,
        })
    }

    /// Posts a message whose text is `sent_us`, padded to 100 bytes
    /// after the digits (so the reader need not scan them all); returns
    /// its id.
    pub async fn say(&mut self, code: &str, sent_us: u64) -> io::Result<u64> {
        // "bench" is the speaker's own name (and what a server from before
        // participants takes as the sender).
        let body = format!(r#"{{"name":"bench","text":"{}"}}"#, sent_text(sent_us));
        let headers = credential(code, true);
        let path = format!("/rooms/{code}/messages");
        let reply = self
            .request("POST", &path, &headers, "application/json", &body)
            .await?;
        let (status, reply) = (reply.status, reply.body);
        if status != 201 {
            return Err(io::Error::other(format!("post answered {status}")));
        }
        id_of(&reply).ok_or_else(|| io::Error::other("no id in the reply"))
    }

    /// Posts `text` (JSON-safe: letters, digits and spaces) as the
    /// speaker; returns its id.
    pub async fn say_text(&mut self, code: &str, text: &str) -> io::Result<u64> {
        let body = format!(r#"{{"text":"{text}"}}"#);
        let headers = credential(code, true);
        let path = format!("/rooms/{code}/messages");
        let reply = self
            .request("POST", &path, &headers, "application/json", &body)
            .await?;
        if reply.status != 201 {
            return Err(io::Error::other(format!("post answered {}", reply.status)));
        }
        id_of(&reply.body).ok_or_else(|| io::Error::other("no id in the reply"))
    }

    /// `GET /rooms/CODE/messages?QUERY` as the watcher: the status and the
    /// body's length.
    pub async fn read(&mut self, code: &str, query: &str) -> io::Result<(u16, usize)> {
        let headers = credential(code, false);
        let path = format!("/rooms/{code}/messages?{query}");
        let reply = self
            .request("GET", &path, &headers, "application/json", "")
            .await?;
        Ok((reply.status, reply.body.len()))
    }

    /// Makes a room and joins it as "bench" and as "bench watcher" (see
    /// [`JOINED`]).
    pub async fn create_room(&mut self) -> io::Result<String> {
        let (status, reply) = self.post("/rooms", "{}").await?;
        let text = String::from_utf8_lossy(&reply);
        let code = text
            .split("\"code\":\"")
            .nth(1)
            .and_then(|rest| rest.get(..4));
        let code = match (status, code) {
            (201, Some(code)) => code.to_string(),
            _ => {
                return Err(io::Error::other(format!(
                    "create room answered {status}: {text}"
                )))
            }
        };
        let speaker = self.try_join(&code, "bench", false).await?;
        let watcher = self.try_join(&code, "bench watcher", true).await?;
        if let (Some(speaker), Some(watcher)) = (speaker, watcher) {
            let tokens = Joined { speaker, watcher };
            JOINED.lock().unwrap().insert(code.clone(), tokens);
        }
        Ok(code)
    }

    /// [`Poster::join`], for a server that may not take joins: `None` from
    /// the floor (which answers every POST alike, with no token) and from a
    /// roomcast from before participants (404), so `--server` can compare
    /// builds across that change.
    async fn try_join(
        &mut self,
        code: &str,
        name: &str,
        watch: bool,
    ) -> io::Result<Option<String>> {
        match self.ask_join(code, name, watch, "").await? {
            (201, token, _) => Ok(token),
            (404, _, _) => Ok(None),
            (status, _, text) => Err(join_refused(code, status, &text)),
        }
    }

    /// Joins `code` as `name` (a watcher if `watch`) with `headers`;
    /// returns the token.
    pub async fn join(
        &mut self,
        code: &str,
        name: &str,
        watch: bool,
        headers: &str,
    ) -> io::Result<String> {
        match self.ask_join(code, name, watch, headers).await? {
            (201, Some(token), _) => Ok(token),
            (status, _, text) => Err(join_refused(code, status, &text)),
        }
    }

    /// POSTs a join: the status, the token if the answer has one, and the
    /// answer's text.
    async fn ask_join(
        &mut self,
        code: &str,
        name: &str,
        watch: bool,
        headers: &str,
    ) -> io::Result<(u16, Option<String>, String)> {
        let body = serde_json::json!({ "name": name, "watch": watch }).to_string();
        let path = format!("/rooms/{code}/join");
        let reply = self
            .request("POST", &path, headers, "application/json", &body)
            .await?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let token = text
            .split("\"token\":\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .map(str::to_string);
        Ok((reply.status, token, text))
    }
}

fn join_refused(code: &str, status: u16, text: &str) -> io::Error {
    io::Error::other(format!("join {code} answered {status}: {text}"))
}

pub fn id_of(json: &[u8]) -> Option<u64> {
    number_after(json, b"\"id\":")
}

/// The 4-letter code in `"room":"ABCD"` of an event's JSON.
fn room_of(json: &[u8]) -> Option<[u8; 4]> {
    let key = b"\"room\":\"";
    let start = memmem::find(json, key)? + key.len();
    json.get(start..start + 4)?.try_into().ok()
}

/// The decimal number right after the first `key` in `json`.
fn number_after(json: &[u8], key: &[u8]) -> Option<u64> {
    let start = memmem::find(json, key)? + key.len();
    digits(&json[start..])
}

/// The decimal number `text` starts with (leading zeros allowed: the
/// benchmark pads its texts to 100 digits).
fn digits(text: &[u8]) -> Option<u64> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let zeros = text[..len].iter().take_while(|&&b| b == b'0').count();
    text[zeros..len].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Percentiles of µs samples, in ms: (p50, p99, max).
pub fn percentiles_ms(samples: &mut [u32]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

#[cfg(test)]
mod tests {
    // Full paths, no imports: under `cargo bench` (no test harness) the
    // test below is dropped, and an import would be unused.
    #[test]
    fn the_parser_reads_chunked_sse_split_anywhere() {
        let frames = [
            "event:members\ndata:{\"members\":[]}\n\n",
            "event:message\ndata:{\"id\":7,\"text\":\"000000000000000000000000000123\"}\nid:7\n\n",
            // A multiplexed stream's: the id is a cursor, the room in the JSON.
            "id:EFGH:3,ABCD:9\nevent:message\ndata:{\"id\":9,\"room\":\"ABCD\",\"text\":\"0456\"}\n\n",
        ];
        let body: String = frames
            .iter()
            .map(|f| format!("{:x}\r\n{f}\r\n", f.len()))
            .collect();
        let body = body.as_bytes();
        for split in 0..body.len() {
            let mut parser = super::Parser::default();
            let mut got = Vec::new();
            parser.feed(&body[..split], |frame| got.push(frame));
            parser.feed(&body[split..], |frame| got.push(frame));
            let expected = vec![
                super::Frame::Members,
                super::Frame::Message {
                    id: 7,
                    sent_us: 123,
                    room: None,
                },
                super::Frame::Message {
                    id: 9,
                    sent_us: 456,
                    room: Some(*b"ABCD"),
                },
            ];
            assert_eq!(got, expected, "split at {split}");
        }
    }
}
