//! The fan-out benchmark at `--quick` sizes, so it keeps working: this
//! checks that every scenario runs and loses, duplicates or reorders
//! nothing. It never looks at the timings.

#[allow(dead_code)] // the benchmark's own `main` is not called here
#[path = "../benches/fanout/main.rs"]
mod fanout;

fn quick(only: Option<&str>) -> fanout::Options {
    fanout::Options {
        quick: true,
        url: None,
        only: only.map(str::to_string),
        minutes: 0.0,
        server: env!("CARGO_BIN_EXE_roomcast").to_string(),
        subscribers: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_at_quick_sizes_and_loses_nothing() {
    let rows = fanout::run(&quick(None)).await;
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "startup/100",
            "startup/10000",
            "startup/redis/100",
            "startup/redis/10000",
            "idle",
            "room-1k@10/s",
            "room-1k@100/s",
            "floor/room-1k@10/s",
            "floor/room-1k@100/s",
            "floor/posts",
            "saturate",
            "many-rooms",
            "multiplex",
            "posts/0-subs",
            "posts/1k-subs",
            "posts/memory",
            "cluster/1-node",
            "cluster/2-nodes",
            "search",
            "search/redis"
        ]
    );
    for row in &rows {
        assert!(row.failures.is_empty(), "{}: {:?}", row.name, row.failures);
    }
}

/// The soak for a few seconds: every accepted message in history and on
/// every stream that was open for it, and the server back to no rooms, no
/// streams and its baseline memory once everyone has gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_loses_nothing_and_gives_everything_back() {
    let rows = fanout::run(&quick(Some("soak"))).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "soak");
    assert!(rows[0].failures.is_empty(), "{:?}", rows[0].failures);
}
