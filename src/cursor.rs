//! A multiplexed stream's position over several rooms, `ABCD:57,EFGH:12`:
//! the SSE `id:` of each of its events, taken back as `Last-Event-ID` or
//! `?since=`. One room's id in a cursor is the newest of that room the
//! client has been sent.

use std::fmt::Write;

use crate::model::RoomCode;

/// Reads a cursor: one `CODE:ID` per room, comma-separated, each room at
/// most once. An empty cursor names no room.
pub fn parse(text: &str) -> Result<Vec<(RoomCode, u64)>, String> {
    let mut rooms: Vec<(RoomCode, u64)> = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("a cursor reads CODE:ID,CODE:ID (not {part:?}).");
        let (code, id) = part.split_once(':').ok_or_else(bad)?;
        let code: RoomCode = code.parse().map_err(|_| bad())?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        if rooms.iter().any(|(seen, _)| *seen == code) {
            return Err(format!("the cursor names {code} twice."));
        }
        rooms.push((code, id));
    }
    Ok(rooms)
}

/// Writes the cursor of `rooms` (each room's newest id sent) after `out`.
pub fn write<'a>(out: &mut String, rooms: impl Iterator<Item = (&'a RoomCode, u64)>) {
    for (i, (code, id)) in rooms.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{code}:{id}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_was_written() {
        let rooms: Vec<(RoomCode, u64)> =
            vec![("ABCD".parse().unwrap(), 57), ("EFGH".parse().unwrap(), 0)];
        let mut text = String::new();
        write(&mut text, rooms.iter().map(|(c, id)| (c, *id)));
        assert_eq!(text, "ABCD:57,EFGH:0");
        assert_eq!(parse(&text).unwrap(), rooms);
        assert_eq!(parse(" abcd:3 ").unwrap()[0].0.as_str(), "ABCD");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn a_bad_cursor_is_refused_not_guessed() {
        for bad in [
            "ABCD",
            "ABCD:",
            "ABCD:x",
            "AB:1",
            "ABCD:-1",
            "ABCD:1,ABCD:2",
            "ABCD:1;EFGH:2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
