//! `multiplex`: clients that each follow several rooms on one stream
//! (`GET /events?rooms=A,B,…`), as a browser's shared stream does; one
//! post per room per second, every room's followers counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{bearer, Goal, Poster, Subscriber};
use super::{connect_in_bursts, judge, post_at_rate, round, Row, Target};

/// `clients` streams, each on `per_client` of `rooms` rooms (client `i`
/// on rooms `i`, `i + 1`, … mod `rooms`, so each room has as many
/// followers), for `secs` seconds of one post per room per second.
pub async fn multiplex(
    server: &Target,
    clients: usize,
    rooms: usize,
    per_client: usize,
    secs: u64,
) -> Row {
    let mut row = Row::new("multiplex");
    let epoch = Instant::now();
    let mut poster = Poster::connect(server.addr)
        .await
        .expect("connect a poster");
    let mut codes = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        codes.push(poster.create_room().await.expect("create a room"));
    }
    // One watcher session in every room: thousands of streams, one
    // participant, nobody announced.
    let name = "bench mux";
    let token = poster.join(&codes[0], name, true, "").await.expect("join");
    let headers = bearer(&token);
    for code in &codes[1..] {
        let joined = poster.join(code, name, true, &headers).await;
        joined.expect("join the other rooms in the same session");
    }
    let followed: Vec<Vec<usize>> = (0..clients)
        .map(|i| (0..per_client).map(|k| (i + k) % rooms).collect())
        .collect();

    let rss_before = server.rss_kib();
    let (subscribers, errors) = connect_in_bursts(clients, |i| {
        let mine: Vec<String> = followed[i].iter().map(|&r| codes[r].clone()).collect();
        let (addr, headers) = (server.addr, headers.clone());
        async move { Subscriber::connect_multiplexed(addr, &mine, headers, epoch).await }
    })
    .await;
    if errors > 0 {
        row.failures
            .push(format!("{errors} subscribers failed to connect"));
    }
    row.figure("clients", subscribers.len());
    row.figure("rooms_per_client", per_client);
    row.figure("rooms", rooms);
    row.figure("rate_per_s", rooms);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the server settle
    if let (Some(before), Some(after)) = (rss_before, server.rss_kib()) {
        let per = (after.saturating_sub(before) as f64 * 1.024) / subscribers.len().max(1) as f64;
        row.figure("rss_per_client_kb", round(per));
    }

    // One goal per client: the messages of its rooms, known once posting
    // is done.
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs(secs + 30);
    let goals: Vec<Arc<Goal>> = subscribers.iter().map(|_| Goal::new()).collect();
    let followers: Vec<_> = subscribers
        .into_iter()
        .zip(&goals)
        .map(|(s, goal)| tokio::spawn(s.follow(epoch, goal.clone(), deadline)))
        .collect();
    let codes = Arc::new(codes);
    let total = rooms as u64 * secs;
    let (sent_per_room, _) = post_at_rate(
        server.addr,
        epoch,
        &codes,
        rooms as u64,
        total,
        start,
        &mut row,
    )
    .await;
    let expected: Vec<u64> = followed
        .iter()
        .take(goals.len())
        .map(|mine| mine.iter().map(|&r| sent_per_room[r]).sum())
        .collect();
    for (goal, &count) in goals.iter().zip(&expected) {
        goal.finish(count);
    }
    let mut seen = Vec::with_capacity(followers.len());
    for follower in followers {
        seen.push(follower.await.expect("follow task"));
    }
    judge(&mut row, &mut seen, &expected);
    row
}
