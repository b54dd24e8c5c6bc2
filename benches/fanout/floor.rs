//! `floor`: the loads of `room-1k` and `posts`, served not by roomcast but
//! by the least any server could do, so roomcast's rows can be read
//! against what the loopback and this load generator cost on this machine.
//!
//! - `floor/room-1k@…`: one room, fixed-rate messages, the same
//!   subscribers and parser; plain threads write each message, encoded
//!   once, to every socket with one blocking write each. No routing, no
//!   channel, no task per stream, no store.
//! - `floor/posts`: the same 64 posters; a thread per connection reads
//!   each request and answers 201. No routing, no validation, no store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{sent_text, Goal};
use super::{judge, sleep_until_tick, spread, subscribe, Row};

/// Threads that write, one per core here, as the server has workers.
const WRITERS: usize = 2;

/// The frame every subscriber gets first; `Subscriber::connect` waits for
/// a `members` frame.
const OPENING: &str = "event: members\ndata: {\"members\":[]}\n\n";

/// `subs` subscribers, `rate` messages a second for `secs`.
pub async fn floor(name: &str, subs: usize, rate: u64, secs: u64) -> Row {
    let mut row = Row::new(name);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port for the floor");
    let addr = listener.local_addr().expect("the floor's address");
    let (answered, answers) = std::sync::mpsc::channel();
    let accepting = std::thread::spawn(move || accept(&listener, &answered));
    let epoch = Instant::now();
    let (subscribers, errors) = subscribe(addr, "FLOR", subs, epoch).await;
    if errors > 0 {
        row.failures
            .push(format!("{errors} subscribers failed to connect"));
    }
    // Each subscriber that connected was answered, so its socket is sent
    // (or about to be).
    let sockets: Vec<TcpStream> = answers.iter().take(subscribers.len()).collect();
    drop(answers);
    // One more request finds the channel closed and ends the thread.
    let mut last = TcpStream::connect(addr).expect("connect to the floor");
    last.write_all(b"\r\n").expect("send an empty head");
    accepting.join().expect("the accept thread");
    row.figure("subscribers", subscribers.len());
    row.figure("rate_per_s", rate);
    row.figure("writer_threads", WRITERS);
    let total = rate * secs;
    let start = Instant::now() + Duration::from_millis(100);
    let goal = Goal::new();
    let deadline = start + Duration::from_secs(secs + 30);
    let followers: Vec<_> = subscribers
        .into_iter()
        .map(|s| tokio::spawn(s.follow(epoch, goal.clone(), deadline)))
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let writers = write_all(sockets, epoch, start, interval, total);
    // The sockets stay open until every follower is done: a close would
    // read as the server going away.
    let _sockets = tokio::task::spawn_blocking(move || {
        let joined = writers
            .into_iter()
            .map(|w| w.join().expect("a writer thread"));
        joined.flatten().collect::<Vec<TcpStream>>()
    })
    .await
    .expect("join the writers");
    goal.finish(total);
    let mut seen = Vec::with_capacity(followers.len());
    for follower in followers {
        seen.push(follower.await.expect("follow task"));
    }
    spread(&mut row, &seen);
    let expected = vec![total; seen.len()];
    judge(&mut row, &mut seen, &expected);
    row
}

/// Answers every stream request with a chunked head and the opening
/// frame, and sends its socket to `answered`, until that is closed.
fn accept(listener: &TcpListener, answered: &Sender<TcpStream>) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{}",
        chunk(OPENING)
    );
    loop {
        let Ok((mut socket, _)) = listener.accept() else {
            // Out of file descriptors, say: wait rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        // The request head's content is known; it only has to be read.
        let _ = read_head(&mut BufReader::new(&socket), &mut String::new());
        let _ = socket.set_nodelay(true);
        if socket.write_all(head.as_bytes()).is_ok() && answered.send(socket).is_err() {
            return;
        }
    }
}

/// Starts the writers, each with its share of the sockets: message `id`
/// (from 1) goes out at `start + (id − 1) × interval`, its text that time
/// in µs since `epoch`, as `Poster::say` would have posted it.
fn write_all(
    sockets: Vec<TcpStream>,
    epoch: Instant,
    start: Instant,
    interval: Duration,
    total: u64,
) -> Vec<std::thread::JoinHandle<Vec<TcpStream>>> {
    let mut shares: Vec<Vec<TcpStream>> = (0..WRITERS).map(|_| Vec::new()).collect();
    for (i, socket) in sockets.into_iter().enumerate() {
        shares[i % WRITERS].push(socket);
    }
    shares
        .into_iter()
        .map(|mut share| {
            std::thread::spawn(move || {
                for id in 1..=total {
                    let intended = sleep_until_tick(start, interval, id - 1);
                    let text = sent_text(intended.duration_since(epoch).as_micros() as u64);
                    let frame = chunk(&format!(
                        "id: {id}\nevent: message\ndata: {{\"id\":{id},\"kind\":\"message\",\"name\":\"bench\",\"text\":\"{text}\"}}\n\n"
                    ));
                    for socket in &mut share {
                        // A subscriber that went away just misses it; the
                        // judge counts what was lost.
                        let _ = socket.write_all(frame.as_bytes());
                    }
                }
                share
            })
        })
        .collect()
}

/// Reads a request head up to its blank line; its Content-Length (0 if
/// none), or `None` if the connection closed first.
fn read_head(reader: &mut impl BufRead, line: &mut String) -> Option<usize> {
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(length);
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
}

/// `payload` as one chunk of a chunked body.
fn chunk(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n", payload.len())
}

/// A server for `posts` that does the least: a thread per connection reads
/// each request and answers 201 with the next id, storing nothing. Stops
/// accepting when dropped.
pub struct PostsFloor {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl PostsFloor {
    pub fn start() -> PostsFloor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port for the floor");
        let addr = listener.local_addr().expect("the floor's address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let ids = Arc::new(AtomicU64::new(0));
            for socket in listener.incoming().flatten() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let ids = ids.clone();
                std::thread::spawn(move || answer_posts(&socket, &ids));
            }
        });
        PostsFloor { addr, stop }
    }
}

impl Drop for PostsFloor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop to see the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers each request on `socket` until it closes: the head up to its
/// blank line, the body by its Content-Length, then 201 `{"id":N}` (with
/// a `code`, so creating the room works too).
fn answer_posts(socket: &TcpStream, ids: &AtomicU64) {
    let _ = socket.set_nodelay(true);
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    let mut body = Vec::new();
    while let Some(length) = read_head(&mut reader, &mut line) {
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
        let json = format!(r#"{{"id":{id},"code":"FLOR"}}"#);
        let reply = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if (&mut &*socket).write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
