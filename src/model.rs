//! The words of the domain, parsed once at the edge so nothing further in
//! ever sees an unchecked string: [`RoomCode`], [`Name`], [`Text`], and the
//! [`Event`] that goes out as JSON in history and on every stream.

use std::fmt::{self, Write};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest name, in characters.
pub const NAME_MAX_CHARS: usize = 32;
/// Longest message, in characters.
pub const TEXT_MAX_CHARS: usize = 2000;

/// Why a piece of user input was refused; the text is shown to people as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// `Display` as the string inside, for the newtypes of this file.
macro_rules! display_inner {
    ($($newtype:ty),*) => {$(
        impl fmt::Display for $newtype {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

display_inner!(Invalid, RoomCode, Name);

/// A room's code: four ASCII letters (five once many rooms are in use),
/// kept in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode(String);

impl RoomCode {
    /// How long codes are: four letters, or five past
    /// [`RoomCode::length_for`]'s bar.
    pub const SHORT: usize = 4;
    pub const LONG: usize = 5;
    /// How many four-letter codes there are.
    pub const SHORT_CODES: usize = 26usize.pow(Self::SHORT as u32);

    /// Accepts the code in any case (`abcd` is `ABCD`), trimmed.
    pub fn parse(input: &str) -> Result<RoomCode, Invalid> {
        let code = input.trim();
        if code.is_empty() {
            return Err(Invalid("Please enter a room code.".into()));
        }
        let length = Self::SHORT..=Self::LONG;
        if !length.contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Invalid(format!(
                "Room codes are {} or {} letters, like ABCD; \"{}\" is not one.",
                Self::SHORT,
                Self::LONG,
                code
            )));
        }
        Ok(RoomCode(code.to_ascii_uppercase()))
    }

    /// How long a new room's code is when `in_use` codes are taken (by
    /// rooms, or reserved by rooms that ended): four letters while fewer
    /// than `short_limit` are, else five, so that a guessed four-letter
    /// code stays unlikely to be a room.
    pub fn length_for(in_use: usize, short_limit: usize) -> usize {
        if in_use < short_limit {
            Self::SHORT
        } else {
            Self::LONG
        }
    }

    /// A code of `length` letters made from random bytes; the registry
    /// checks it is not taken.
    pub fn random(length: usize) -> RoomCode {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        // 256 is not a multiple of 26, so a few letters come up slightly more
        // often; codes only need to be hard to collide, not uniform.
        let code = bytes[..length.clamp(Self::SHORT, Self::LONG)]
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect();
        RoomCode(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RoomCode {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomCode::parse(s)
    }
}

/// The secret that lets someone into a private room, in its invite link
/// (`/join/ABCD-KEY`): 128 random bits from the OS as 32 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey(String);

impl RoomKey {
    pub fn random() -> RoomKey {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source is always there");
        RoomKey(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A key as stored (by this roomcast: not checked again).
    pub fn stored(key: String) -> RoomKey {
        RoomKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this key, in time that does not depend on where
    /// they differ (so the answer's timing gives nothing away).
    pub fn opens(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKey(…)") // never in a log
    }
}

/// A person's display name: trimmed, in NFC, 1 to 32 characters, no
/// control or invisible formatting characters (they would garble every
/// page and log line it appears in, or make two names look the same).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// What two names are compared by: the Unicode TR39 confusable skeleton
/// of the lower-cased skeleton, with `i` counted as `l`. So `Alice`,
/// `alice`, Cyrillic `аlice`, `AIice` (a capital i) and `a1ice` are one
/// name as far as who holds it goes. The skeleton comes first as well as
/// last because it maps some characters to capitals (`0` to `O`); and `i`
/// is `l` because a capital `I` is both `i` in upper case and a twin of
/// `l`, so no key that ignores case could part `ALICE` from `AIice`
/// otherwise. Spaces do not count (`Al ice` is `Alice`), nor anything the
/// skeleton makes a space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameKey(pub String);

/// The version of [`Name::key`]: bump it whenever the key changes, so
/// names kept under an older one are filed again (with Redis, see
/// `rooms::redis::rekey`; the local store rebuilds its index at load).
pub const NAME_KEY_VERSION: u32 = 3;

impl Name {
    pub fn parse(input: &str) -> Result<Name, Invalid> {
        let owned: String = input.trim().nfc().collect();
        let name = owned.as_str();
        if name.is_empty() {
            return Err(Invalid("Please enter a name.".into()));
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(Invalid(format!(
                "Names can be at most {NAME_MAX_CHARS} characters."
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid("Names cannot contain control characters.".into()));
        }
        if name.chars().any(is_direction_control) {
            return Err(Invalid(
                "Names cannot contain text-direction controls.".into(),
            ));
        }
        if name
            .chars()
            .any(|c| c.general_category() == GeneralCategory::Format || is_blank_letter(c))
        {
            return Err(Invalid(
                "Names cannot contain invisible formatting characters.".into(),
            ));
        }
        Ok(Name(owned))
    }

    /// What this name is compared by when someone else wants it.
    pub fn key(&self) -> NameKey {
        let lower = unicode_security::skeleton(&self.0)
            .collect::<String>()
            .to_lowercase();
        let key = unicode_security::skeleton(&lower)
            .filter(|c| !c.is_whitespace()) // what reads as a gap
            .map(|c| if c == 'i' { 'l' } else { c });
        NameKey(key.collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that are letters or symbols to Unicode but print as
/// nothing (the braille blank, the Hangul fillers): `Alice` with one after
/// it would read as `Alice`.
fn is_blank_letter(c: char) -> bool {
    matches!(
        c,
        '\u{2800}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
    )
}

/// Characters that reorder the text around them (bidi embeddings,
/// overrides, isolates and marks): in a name they could make it read as
/// another name, or scramble the line it sits in.
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A message's text, kept exactly as typed (newlines, CR and all): it only
/// ever travels inside JSON, so no character can break the SSE framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn parse(input: &str) -> Result<Text, Invalid> {
        if input.trim().is_empty() {
            return Err(Invalid("Please enter a message.".into()));
        }
        if input.chars().count() > TEXT_MAX_CHARS {
            return Err(Invalid(format!(
                "Messages can be at most {TEXT_MAX_CHARS} characters."
            )));
        }
        Ok(Text(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest `Idempotency-Key`, in bytes.
pub const IDEMPOTENCY_KEY_MAX: usize = 64;

/// A post's `Idempotency-Key`: the client's name for one message, so a
/// retry of it is answered with the message stored the first time rather
/// than stored again. Scoped to the sender's session in the room, and
/// remembered for [`crate::limits::IDEMPOTENCY_WINDOW`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header's value: a token of up to [`IDEMPOTENCY_KEY_MAX`]
    /// visible ASCII characters, bare or quoted (as the draft standard
    /// writes it, a structured-field string).
    pub fn parse(value: &str) -> Result<IdempotencyKey, Invalid> {
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let visible = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '\\');
        if value.is_empty() || value.len() > IDEMPOTENCY_KEY_MAX || !value.chars().all(visible) {
            return Err(Invalid(format!(
                "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters (a UUID, say)."
            )));
        }
        Ok(IdempotencyKey(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a post's key vouches for: the key, and the SHA-1 of the text it
/// was first sent with (the same digest on every backend: Redis's scripts
/// compare it), so the key sent again with other words is refused rather
/// than answered with a message that is not the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostKey {
    pub key: IdempotencyKey,
    pub digest: String,
}

impl PostKey {
    pub fn new(key: IdempotencyKey, text: &Text) -> PostKey {
        let digest = sha1_smol::Sha1::from(text.as_str()).digest().to_string();
        PostKey { key, digest }
    }
}

/// Longest search, in characters.
pub const SEARCH_MAX_CHARS: usize = 200;

/// Most words in one search (each one more index lookup).
pub const SEARCH_MAX_WORDS: usize = 8;

/// What a search asks for (`?q=`): words, each of which a message must
/// have, as the start of one of its words, case and accents aside where
/// the store can tell (`hel` finds "Hello"). Every store reads words the
/// same way: runs of letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words(Vec<String>);

impl Words {
    pub fn parse(input: &str) -> Result<Words, Invalid> {
        if input.chars().count() > SEARCH_MAX_CHARS {
            return Err(Invalid(format!(
                "A search can be at most {SEARCH_MAX_CHARS} characters."
            )));
        }
        let mut words: Vec<String> = words_of(input).collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            return Err(Invalid(
                "Search for at least one word (letters or digits).".into(),
            ));
        }
        if words.len() > SEARCH_MAX_WORDS {
            return Err(Invalid(format!(
                "A search can have at most {SEARCH_MAX_WORDS} words."
            )));
        }
        Ok(Words(words))
    }

    /// As an FTS5 query: each word a quoted prefix, all of them required.
    /// (Quoted, no word can be an operator; a word holds no quote.)
    pub fn fts5(&self) -> String {
        let terms: Vec<String> = self.0.iter().map(|w| format!("\"{w}\"*")).collect();
        terms.join(" ")
    }

    /// Whether `text` has every word, each as the start of one of its own.
    pub fn found_in(&self, text: &str) -> bool {
        let own: Vec<String> = words_of(text).collect();
        self.0
            .iter()
            .all(|word| own.iter().any(|w| w.starts_with(word.as_str())))
    }
}

/// The words of `text`, lower case: runs of letters and digits.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// What happened in a room. These are the room's history: each has an id.
///
/// Every kind is declared here once: its name on the wire and in every
/// store ([`Kind::ALL`], [`Kind::as_str`], [`FromStr`]). A join or leave
/// tells of a change the roster already made (the `members` frame carries
/// the list). The page renders kinds by the same names (templates/room.hbs
/// and assets/app.js).
///
/// An edit, a delete and a reaction each change the message they
/// `target` (see [`amend`]); they are history too, so a stream or a
/// resume sees each change in order, but they count as notices, not as
/// messages, for `--history`'s rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Message,
    Join,
    Leave,
    Edit,
    Delete,
    Reaction,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Message,
        Kind::Join,
        Kind::Leave,
        Kind::Edit,
        Kind::Delete,
        Kind::Reaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Join => "join",
            Kind::Leave => "leave",
            Kind::Edit => "edit",
            Kind::Delete => "delete",
            Kind::Reaction => "reaction",
        }
    }

    /// Whether events of this kind change a message (their `target`).
    pub fn amends(self) -> bool {
        matches!(self, Kind::Edit | Kind::Delete | Kind::Reaction)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Invalid;

    /// The same clear error for an unknown kind, whichever store read it.
    fn from_str(s: &str) -> Result<Kind, Invalid> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| Invalid(format!("unknown event kind {s:?}")))
    }
}

/// One history event, exactly as it goes out in JSON. A message reads
/// as it is now: its text as last edited (and when), its reactions, or
/// only that it was deleted (no name, no text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: u64,
    pub kind: Kind,
    pub room: String,
    /// Who: empty (and left out) for a deleted message and a delete.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A message's text, an edit's new text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// UTC, RFC 3339 with milliseconds.
    pub ts: String,
    /// The message an edit, a delete or a reaction changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    /// A reaction's emoji, and whether it is put on or taken off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// When a message was last edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// A message's reactions, each emoji once, in the order first given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reactions>,
    /// Who sent a message (or gave a reaction), as [`Author`]: never in
    /// the JSON.
    #[serde(skip)]
    pub author: Option<Author>,
}

impl Event {
    pub fn new(id: u64, kind: Kind, room: &RoomCode, name: &Name, text: Option<&Text>) -> Event {
        Event {
            id,
            kind,
            room: room.to_string(),
            name: name.to_string(),
            text: text.map(|t| t.as_str().to_owned()),
            ts: timestamp(),
            ..Event::default()
        }
    }
}

pub mod amend;

/// Who sent a message or gave a reaction: the SHA-1 of their session's
/// id, so a log that every node reads (and that is kept on disk) never
/// holds a session's secret, yet only that session matches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Author(String);

impl Author {
    /// The author of the session whose id reads `session_id`.
    pub fn of_session(session_id: &str) -> Author {
        Author(sha1_smol::Sha1::from(session_id).digest().to_string())
    }

    /// An author as stored (by this roomcast: not checked again).
    pub fn stored(author: String) -> Author {
        Author(author)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everyone who gave a message one emoji, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reactions {
    pub emoji: String,
    pub count: usize,
    pub names: Vec<String>,
    /// Who each name is, for taking one off again.
    #[serde(skip)]
    pub authors: Vec<Author>,
}

/// Now, as an event's `ts`: UTC, RFC 3339 with milliseconds.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// An event together with its JSON and its SSE frame, encoded once when it
/// happens and shared by every stream and history read after that.
#[derive(Debug)]
pub struct Recorded {
    pub event: Event,
    pub json: String,
    /// `id: N`, `event: KIND`, `data: JSON` and the blank line.
    pub frame: Bytes,
}

impl Recorded {
    pub fn new(event: Event) -> Recorded {
        let json = serde_json::to_string(&event).expect("an Event always serializes");
        let frame = sse_frame(Some(event.id), event.kind.as_str(), &json);
        Recorded { event, json, frame }
    }
}

/// One SSE event. `data` must be one line: it is always JSON from serde,
/// which escapes CR and LF, so user text can never start a new field.
pub fn sse_frame(id: Option<u64>, event: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains(['\r', '\n']) && !event.contains(['\r', '\n']));
    // One allocation: this runs for every event, under the registry's lock.
    let mut frame = String::with_capacity(40 + event.len() + data.len());
    if let Some(id) = id {
        let _ = writeln!(frame, "id: {id}");
    }
    for part in ["event: ", event, "\ndata: ", data, "\n\n"] {
        frame.push_str(part);
    }
    Bytes::from(frame)
}

/// Everything a room pushes down its streams.
#[derive(Debug, Clone)]
pub enum Update {
    /// History events (messages, joins, leaves) stored together, in id
    /// order: one update per room per commit, so a stream woken for the
    /// first finds the rest with it, and the channel's slots count
    /// commits, not events.
    Events(Arc<[Arc<Recorded>]>),
    /// The member list changed: a `members` frame, no id.
    Members(Bytes),
    /// Any other frame that is not history (no id): it goes to the streams
    /// open now and is never kept or replayed; never to the streams of the
    /// session that sent it, if one did (by `SessionId::number`).
    Frame(Bytes, Option<u128>),
    /// The session with this id (see `SessionId::number`) left the room,
    /// or ended: its streams end, so nobody reads a room they are not in.
    Left(u128),
    /// The server is stopping: end the stream after what came before (the
    /// client resumes from history once it is back). Sent in band, so a
    /// stream needs no shutdown handle of its own to poll.
    Close,
}

/// Who is in a room, sorted by name: those who take part, and those who
/// only watch; each with whether they are here now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub members: Vec<Present>,
    pub watchers: Vec<Present>,
}

/// A participant, and whether they are here now: online while any stream
/// of their session (a tab, a script) is open in the room, else away.
/// They are in the room either way, from their join until they leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Present {
    pub name: Name,
    pub online: bool,
}

/// The `members` frame for these names in `room`.
pub fn members_frame(room: &RoomCode, names: &Names) -> Bytes {
    sse_frame(None, "members", &members_json(room, names))
}

/// The JSON of a `members` update, naming its room (a multiplexed stream
/// carries several):
/// `{"room":"ABCD","members":[{"name":"alice","online":true}],"watchers":[{"name":"logbot","online":false}]}`.
pub fn members_json(room: &RoomCode, names: &Names) -> Arc<str> {
    #[derive(Serialize)]
    struct Members<'a> {
        room: &'a str,
        members: &'a [Present],
        watchers: &'a [Present],
    }
    let members = Members {
        room: room.as_str(),
        members: &names.members,
        watchers: &names.watchers,
    };
    serde_json::to_string(&members)
        .expect("a list of names always serializes")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_is_a_short_visible_token_bare_or_quoted() {
        let key = |v: &str| IdempotencyKey::parse(v).map(|k| k.as_str().to_string());
        let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(key(uuid).unwrap(), uuid);
        assert_eq!(key(&format!("\"{uuid}\"")).unwrap(), uuid);
        assert_eq!(key(&"x".repeat(64)).unwrap().len(), 64);
        for bad in ["", "\"\"", "a b", "é", "a\\b", &"x".repeat(65)] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
        // The digest is SHA-1's, as Redis's scripts would write it.
        let text = Text::parse("abc").unwrap();
        let digest = PostKey::new(IdempotencyKey::parse("k").unwrap(), &text).digest;
        assert_eq!(digest, "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn names_that_look_alike_share_a_key_and_invisible_ones_are_refused() {
        let key = |n: &str| Name::parse(n).unwrap().key();
        assert_eq!(key("alice"), key("Alice"));
        assert_eq!(key("alice"), key("\u{430}lice"), "Cyrillic a");
        assert_eq!(key("al"), key("AL"));
        // Letters and digits that are another letter's capital's twin.
        assert_eq!(key("Alice"), key("AIice"), "capital i for l");
        assert_eq!(key("alice"), key("a1ice"), "one for l");
        assert_eq!(key("ALICE"), key("AIice"), "capital i either way");
        assert_eq!(key("Ian"), key("lan"));
        assert_eq!(key("alice"), key("al ice"), "gaps do not count");
        assert_eq!(key("al ice"), key("al\u{3000}ice"), "an ideographic space");
        assert_eq!(key("bob"), key("B0B"), "zero for o");
        assert_eq!(key("bob"), key("b0b"));
        assert_eq!(key("mia"), key("rnia"), "rn for m");
        assert_ne!(key("alice"), key("alicia"));
        // NFC: a composed and a decomposed é are one name, kept composed.
        assert_eq!(Name::parse("e\u{301}").unwrap().as_str(), "\u{e9}");
        for invisible in [
            "alice\u{200b}",
            "al\u{ad}ice",
            "\u{feff}alice",
            "a\u{2060}lice",
            "alice\u{2800}",
            "alice\u{3164}",
        ] {
            assert!(Name::parse(invisible).is_err(), "{invisible:?} accepted");
        }
    }

    #[test]
    fn a_room_key_opens_only_for_itself_and_never_shows() {
        let key = RoomKey::random();
        assert_eq!(key.as_str().len(), 32);
        assert!(key.opens(key.as_str()));
        assert!(!key.opens(&key.as_str()[1..]));
        assert!(!key.opens(""));
        assert!(!key.opens(RoomKey::random().as_str()));
        assert_eq!(format!("{key:?}"), "RoomKey(…)");
    }

    #[test]
    fn room_codes_accept_any_case_and_refuse_other_shapes() {
        assert_eq!(RoomCode::parse(" abCd ").unwrap().as_str(), "ABCD");
        assert_eq!(RoomCode::parse("abcDe").unwrap().as_str(), "ABCDE");
        for bad in ["", "   ", "ABC", "ABCDEF", "AB1D", "ÄBCD", "AB D"] {
            assert!(RoomCode::parse(bad).is_err(), "{bad:?} accepted");
        }
        for length in [RoomCode::SHORT, RoomCode::LONG] {
            let code = RoomCode::random(length);
            assert_eq!(code.as_str().len(), length);
            assert_eq!(RoomCode::parse(code.as_str()).unwrap(), code);
        }
    }

    #[test]
    fn codes_get_a_fifth_letter_once_many_are_in_use() {
        // A space of 10 short codes, of which at most half are given out.
        assert_eq!(RoomCode::length_for(0, 5), 4);
        assert_eq!(RoomCode::length_for(4, 5), 4);
        assert_eq!(RoomCode::length_for(5, 5), 5);
        assert_eq!(RoomCode::length_for(9, 5), 5);
        assert_eq!(RoomCode::SHORT_CODES, 456_976);
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(Name::parse("  alice ").unwrap().as_str(), "alice");
        assert_eq!(
            Name::parse("").unwrap_err().0,
            "Please enter a name.".to_string()
        );
        assert!(Name::parse(&"é".repeat(32)).is_ok());
        assert!(Name::parse(&"é".repeat(33)).is_err());
        assert!(Name::parse("a\u{7}b").is_err());
        assert!(Name::parse("a\nb").is_err());
        assert!(Name::parse("adm\u{202E}nimda").is_err());
        assert!(Name::parse("x\u{2066}y").is_err());
        assert!(Name::parse("名前").is_ok());
    }

    #[test]
    fn text_keeps_every_character_but_refuses_blank_and_long() {
        let tricky = "line\r\nevent: forged\rid: 9\n\0";
        assert_eq!(Text::parse(tricky).unwrap().as_str(), tricky);
        assert!(Text::parse(" \n\t ").is_err());
        assert!(Text::parse(&"x".repeat(2000)).is_ok());
        assert!(Text::parse(&"x".repeat(2001)).is_err());
    }

    #[test]
    fn event_json_has_the_documented_shape() {
        let code = RoomCode::parse("ABCD").unwrap();
        let name = Name::parse("alice").unwrap();
        let text = Text::parse("hi").unwrap();
        let rec = Recorded::new(Event::new(7, Kind::Message, &code, &name, Some(&text)));
        let v: serde_json::Value = serde_json::from_str(&rec.json).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["kind"], "message");
        assert_eq!(v["room"], "ABCD");
        assert_eq!(v["name"], "alice");
        assert_eq!(v["text"], "hi");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        let join = Recorded::new(Event::new(8, Kind::Join, &code, &name, None));
        assert!(!join.json.contains("\"text\""));
    }
}
