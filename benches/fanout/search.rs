//! `search`: one room holding `events` messages (`--history` raised to
//! keep them all), then searches one after another, each for a word that
//! is in a hundredth of the messages (the newest 50 of them are answered)
//! or in none: the latency of `GET /rooms/CODE/messages?q=` from the
//! store's index (SQLite FTS5) — or the scan, against a `--redis` server.

use std::time::{Duration, Instant};

use super::load::{percentiles_ms, Poster};
use super::{round, Row, Target};

/// Posters filling the room at once.
const FILLERS: usize = 8;

pub async fn search(name: &str, server: &Target, events: usize, searches: usize) -> Row {
    let mut row = Row::new(name);
    let mut poster = Poster::connect(server.addr).await.expect("connect");
    let code = poster.create_room().await.expect("create a room");
    let filled = Instant::now();
    let fillers: Vec<_> = (0..FILLERS)
        .map(|f| {
            let (addr, code) = (server.addr, code.clone());
            tokio::spawn(async move {
                let mut poster = Poster::connect(addr).await.expect("connect");
                for i in (f..events).step_by(FILLERS) {
                    let text = format!("word{} filler text of an ordinary message {i}", i % 100);
                    poster.say_text(&code, &text).await.expect("fill the room");
                }
            })
        })
        .collect();
    for filler in fillers {
        filler.await.expect("filler");
    }
    row.figure("events", events);
    row.figure("fill_s", round(filled.elapsed().as_secs_f64()));
    let mut latencies = Vec::with_capacity(searches);
    let mut failures = 0;
    for i in 0..searches {
        // Every tenth search finds nothing: the whole index (or log) is
        // looked through for it.
        let query = if i % 10 == 9 {
            "q=absent&limit=50".to_string()
        } else {
            format!("q=word{}&limit=50", i % 100)
        };
        let begun = Instant::now();
        match poster.read(&code, &query).await {
            Ok((200, _)) => latencies.push(begun.elapsed().as_micros() as u32),
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (p50, p99, max) = percentiles_ms(&mut latencies);
    row.figure("searches", searches);
    row.figure("search_p50_ms", round(p50));
    row.figure("search_p99_ms", round(p99));
    row.figure("search_max_ms", round(max));
    if failures > 0 {
        row.failures.push(format!("{failures} searches failed"));
    }
    row
}
