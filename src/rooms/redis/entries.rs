//! A room's log as events: each stream entry decoded ([`decode`]), a
//! message laid over with how it reads now (`…:amended`, [`amended`]),
//! and a deleted message, whose entry is gone, in its place
//! ([`deleted`]). See common.lua for the keys.

use std::sync::Arc;

use log::warn;
use redis::streams::StreamId;
use redis::Value;
use serde::Deserialize;

use crate::model::{Author, Event, Kind, Reactions, Recorded, RoomCode};

/// A log entry as the event it records; `None` for an entry this version
/// cannot read (it is skipped, and said so).
pub(crate) fn decode(code: &RoomCode, entry: &StreamId) -> Option<Event> {
    let id = entry
        .id
        .strip_prefix("0-")
        .and_then(|n| n.parse::<u64>().ok());
    let text = |field: &str| -> Option<String> {
        match entry.map.get(field)? {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    let kind = match text("kind").unwrap_or_default().parse::<Kind>() {
        Ok(kind) => kind,
        Err(err) => {
            warn!("skipping entry {} in room {code}: {err}", entry.id);
            return None;
        }
    };
    let (Some(id), Some(name), Some(ts)) = (id, text("name"), text("ts")) else {
        warn!("skipping an unreadable entry {} in room {code}", entry.id);
        return None;
    };
    Some(Event {
        id,
        kind,
        room: code.to_string(),
        name,
        text: text("text"),
        ts,
        target: text("target").and_then(|t| t.parse().ok()),
        emoji: text("emoji"),
        on: text("on").map(|on| on == "1"),
        author: text("by").map(Author::stored),
        ..Event::default()
    })
}

/// A log entry as it goes out.
pub(crate) fn recorded(code: &RoomCode, entry: &StreamId) -> Option<Arc<Recorded>> {
    decode(code, entry).map(|event| Arc::new(Recorded::new(event)))
}

/// How a message reads now, as amend.lua keeps it.
#[derive(Debug, Default, Deserialize)]
struct State {
    text: Option<String>,
    edited: Option<String>,
    #[serde(default)]
    reactions: Vec<Given>,
}

#[derive(Debug, Deserialize)]
struct Given {
    emoji: String,
    names: Vec<String>,
    by: Vec<String>,
}

/// `message` with its amended `state` laid over it ('' for none).
pub(crate) fn amended(mut message: Event, state: &str) -> Event {
    if state.is_empty() {
        return message;
    }
    let Ok(state) = serde_json::from_str::<State>(state) else {
        warn!(
            "unreadable amendments of message {} in room {}",
            message.id, message.room
        );
        return message;
    };
    if let Some(text) = state.text {
        message.text = Some(text);
    }
    message.edited = state.edited;
    message.reactions = (state.reactions.into_iter())
        .filter(|given| given.names.len() == given.by.len() && !given.names.is_empty())
        .map(|given| Reactions {
            emoji: given.emoji,
            count: given.names.len(),
            names: given.names,
            authors: given.by.into_iter().map(Author::stored).collect(),
        })
        .collect();
    message
}

/// A deleted message in its place: `ID TAB TS`, as …:deleted has it.
pub(crate) fn deleted(code: &RoomCode, mark: &str) -> Option<Event> {
    let (id, ts) = mark.split_once('\t')?;
    Some(Event::placeholder(id.parse().ok()?, code.as_str(), ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_to_events_and_odd_ones_are_skipped() {
        let code = RoomCode::parse("ABCD").unwrap();
        let field = |v: &str| Value::BulkString(v.as_bytes().to_vec());
        let mut entry = StreamId {
            id: "0-7".into(),
            map: [
                ("kind".to_string(), field("message")),
                ("name".to_string(), field("al")),
                ("ts".to_string(), field("2026-11-22T10:00:00.000Z")),
                ("text".to_string(), field("hi\r\nthere")),
                ("by".to_string(), field("abc")),
            ]
            .into(),
            ..StreamId::default()
        };
        let event = decode(&code, &entry).unwrap();
        assert_eq!(event.id, 7);
        assert_eq!(event.kind, Kind::Message);
        assert_eq!(event.text.as_deref(), Some("hi\r\nthere"));
        assert_eq!(event.author, Some(Author::stored("abc".into())));
        entry.id = "1700000000000-0".into();
        assert!(decode(&code, &entry).is_none(), "not an id roomcast gave");
    }

    #[test]
    fn a_message_reads_as_amended_and_a_deleted_one_as_nothing_but_its_place() {
        let code = RoomCode::parse("ABCD").unwrap();
        let message = Event {
            id: 3,
            text: Some("hi".into()),
            name: "al".into(),
            ..Event::default()
        };
        let state = r#"{"text":"hello \/ you","edited":"T","changes":[4],"reactions":[{"emoji":"👍","names":["bo"],"by":["x"]}]}"#;
        let now = amended(message.clone(), state);
        assert_eq!(now.text.as_deref(), Some("hello / you"));
        assert_eq!(now.edited.as_deref(), Some("T"));
        assert_eq!(
            (now.reactions[0].count, &now.reactions[0].names[0][..]),
            (1, "bo")
        );
        assert_eq!(amended(message.clone(), ""), message);
        assert_eq!(
            amended(message.clone(), "{"),
            message,
            "unreadable: as posted"
        );
        let gone = deleted(&code, "3\tT").unwrap();
        assert!(gone.deleted && gone.name.is_empty() && gone.text.is_none());
        assert_eq!((gone.id, gone.kind), (3, Kind::Message));
    }
}
