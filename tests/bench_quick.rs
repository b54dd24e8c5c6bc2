//! The fan-out benchmark at `--quick` sizes, so it keeps working: this
//! checks that every scenario runs and loses, duplicates or reorders
//! nothing. It never looks at the timings.

#[allow(dead_code)] // the benchmark's own `main` is not called here
#[path = "../benches/fanout/main.rs"]
mod fanout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_at_quick_sizes_and_loses_nothing() {
    let options = fanout::Options {
        quick: true,
        url: None,
        only: None,
        server: env!("CARGO_BIN_EXE_roomcast").to_string(),
    };
    let rows = fanout::run(&options).await;
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "idle",
            "room-1k@10/s",
            "room-1k@100/s",
            "saturate",
            "many-rooms",
            "posts/0-subs",
            "posts/1k-subs"
        ]
    );
    for row in &rows {
        assert!(row.failures.is_empty(), "{}: {:?}", row.name, row.failures);
    }
}
