//! Any request body, as JSON, a form or something else: parsing must not
//! panic, and what it accepts must go through the domain checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast::model::{Name, Text};
use serde::Deserialize;

#[derive(Deserialize)]
struct MessageInput {
    name: Option<String>,
    text: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 4 {
        0 => Some("application/json"),
        1 => Some("application/x-www-form-urlencoded"),
        2 => Some("application/json; charset=utf-8"),
        _ => None,
    };
    if let Ok(input) = roomcast::body::parse::<MessageInput>(content_type, body) {
        let _ = Name::parse(input.name.as_deref().unwrap_or_default());
        let _ = Text::parse(input.text.as_deref().unwrap_or_default());
    }
});
