//! Any accepted text, encoded as an SSE frame and read back by the HTML
//! spec's line rules, is exactly one `message` event with the right id and
//! the text unchanged: no text can forge a field or split the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast::model::{Event, Kind, Name, Recorded, RoomCode, Text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(checked) = Text::parse(text) else {
        return;
    };
    let code = RoomCode::parse("ABCD").unwrap();
    let name = Name::parse("al").unwrap();
    let recorded = Recorded::new(Event::new(42, Kind::Message, &code, &name, Some(&checked)));
    let frame = std::str::from_utf8(&recorded.frame).unwrap();
    let normalized = frame.replace("\r\n", "\n").replace('\r', "\n");
    let (mut event, mut id, mut datas, mut dispatched) = (None, None, Vec::new(), 0);
    let mut json = None;
    for line in normalized.split('\n') {
        if line.is_empty() {
            if !datas.is_empty() {
                dispatched += 1;
                json = Some(datas.join("\n"));
                datas.clear();
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "id" => id = Some(value.to_string()),
            "data" => datas.push(value.to_string()),
            other => panic!("a forged field {other:?}"),
        }
    }
    assert_eq!(dispatched, 1);
    assert_eq!(event.as_deref(), Some("message"));
    assert_eq!(id.as_deref(), Some("42"));
    let json: serde_json::Value = serde_json::from_str(&json.unwrap()).unwrap();
    assert_eq!(json["text"].as_str(), Some(text));
});
