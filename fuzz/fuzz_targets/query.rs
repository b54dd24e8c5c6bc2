//! Any query string: parsing must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[allow(dead_code)]
#[derive(Deserialize)]
struct StreamQuery {
    since: Option<u64>,
    limit: Option<usize>,
    name: Option<String>,
    code: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = roomcast::body::query::<StreamQuery>(query);
    }
});
