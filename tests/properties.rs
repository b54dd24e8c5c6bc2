//! Property tests: any text a person can send comes out of a form or a
//! JSON body, into an event, through the store, its SSE frame and a
//! conforming SSE parser exactly as it went in, and never forges a field.

use proptest::prelude::*;
use roomcast::body;
use std::sync::Arc;

use roomcast::model::{Event, Kind, Name, Recorded, RoomCode, Text};
use roomcast::store::sqlite::{SqliteStore, IN_MEMORY};
use roomcast::store::{Change, Store};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Input {
    text: Option<String>,
}

/// One dispatched event, by the HTML spec's rules: lines end in CR, LF or
/// CRLF; one space after the colon is cut; `data` lines join with LF.
#[derive(Debug, Default, PartialEq)]
struct Dispatched {
    event: String,
    data: String,
    id: Option<String>,
}

fn parse_sse(stream: &str) -> Vec<Dispatched> {
    let mut events = Vec::new();
    let (mut event, mut data, mut id) = (String::new(), Vec::<String>::new(), None);
    let normalized = stream.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                events.push(Dispatched {
                    event: std::mem::take(&mut event),
                    data: data.join("\n"),
                    id: id.clone(),
                });
            }
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_string(),
            "data" => data.push(value.to_string()),
            "id" => id = Some(value.to_string()),
            _ => {}
        }
    }
    events
}

/// Text with the characters that break naive framing mixed in.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<String>(),
        Just("\r".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\0".to_string()),
        Just("event: leave".to_string()),
        Just("id: 999".to_string()),
        Just("data: {}".to_string()),
        Just(": comment".to_string()),
        Just("\u{2028}\u{85}\u{feff}".to_string()),
    ];
    prop::collection::vec(pieces, 1..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_survives_form_and_json_bodies(text in tricky_text()) {
        let form = serde_urlencoded::to_string([("text", &text)]).unwrap();
        let from_form: Input = body::parse(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
        prop_assert_eq!(from_form.text.as_deref(), Some(text.as_str()));
        let json = serde_json::json!({ "text": text }).to_string();
        let from_json: Input = body::parse(Some("application/json"), json.as_bytes()).unwrap();
        prop_assert_eq!(from_json.text.as_deref(), Some(text.as_str()));
    }

    #[test]
    fn an_sse_frame_carries_the_text_unchanged_and_forges_nothing(text in tricky_text(), id in 1u64..1_000_000) {
        let Ok(checked) = Text::parse(&text) else {
            // Refused (blank or too long): nothing is stored or sent.
            return Ok(());
        };
        let code = RoomCode::parse("ABCD").unwrap();
        let name = Name::parse("al").unwrap();
        let event = Event::new(id, Kind::Message, &code, &name, Some(&checked));
        // Through the store and back, as after a restart.
        let mut store = SqliteStore::open(IN_MEMORY).unwrap();
        let changes = [
            Change::CreateRoom { code: code.clone(), key: None, at_ms: 1 },
            Change::Append { code: code.clone(), event: Arc::new(Recorded::new(event)), key: None, at_ms: 2 },
        ];
        store.apply(&changes, 10).unwrap();
        let recorded = store.room(&code, 10, 1).unwrap().unwrap().newest.pop().unwrap();
        prop_assert_eq!(recorded.event.text.as_deref(), Some(text.as_str()));
        let frame = String::from_utf8(recorded.frame.to_vec()).unwrap();
        // Two frames back to back, as a stream sends them.
        let events = parse_sse(&format!("{frame}{frame}"));
        prop_assert_eq!(events.len(), 2, "exactly the frames sent: {:?}", frame);
        for event in events {
            prop_assert_eq!(event.event.as_str(), "message");
            prop_assert_eq!(event.id, Some(id.to_string()));
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            prop_assert_eq!(data["text"].as_str(), Some(text.as_str()));
            prop_assert_eq!(data["id"].as_u64(), Some(id));
        }
    }
}

#[test]
fn json_refuses_lone_surrogates_and_bad_utf8() {
    for bad in [
        &br#"{"text":"\ud800"}"#[..],
        &br#"{"text":"a\udc00b"}"#[..],
        &b"{\"text\":\"\xed\xa0\x80\"}"[..],
    ] {
        let parsed: Result<Input, _> = body::parse(Some("application/json"), bad);
        assert!(
            parsed.is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(bad)
        );
    }
}
