//! How an edit, a delete or a reaction changes the message it targets:
//! [`Amend`] (what someone asks for), [`Emoji`] (the reactions there
//! are), [`Refused`] (why not), and [`Event::may_amend`] and
//! [`Event::amended_by`], the one rule memory and every store apply.

use super::{Author, Event, Invalid, Kind, Name, Reactions, RoomCode, Text};

/// The reactions there are: a short set, each one grapheme that every
/// system draws, so a reaction is never a paragraph of combining marks.
pub const REACTIONS: [&str; 8] = ["👍", "👎", "❤️", "😂", "🎉", "😮", "😢", "👀"];

/// One of [`REACTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emoji(&'static str);

impl Emoji {
    /// One of [`REACTIONS`], trimmed; the heart with or without its
    /// emoji selector.
    pub fn parse(input: &str) -> Result<Emoji, Invalid> {
        let input = input.trim();
        let input = if input == "\u{2764}" { "❤️" } else { input };
        match REACTIONS.iter().find(|&&r| r == input) {
            Some(emoji) => Ok(Emoji(emoji)),
            None => Err(Invalid(format!(
                "A reaction is one of {}.",
                REACTIONS.join(" ")
            ))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// What someone asks to do to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amend {
    Edit(Text),
    Delete,
    /// Put this reaction on, or take it off if it is on.
    React(Emoji),
}

/// Why an amendment is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No message has this id (any more): it never was one, it was
    /// deleted, or history no longer keeps it.
    NoSuchMessage,
    /// Only the message's sender may edit or delete it.
    NotYours,
}

impl Event {
    /// A deleted message in its place: its id, room and time, no name,
    /// no words, nothing else.
    pub fn placeholder(id: u64, room: &str, ts: &str) -> Event {
        Event {
            id,
            room: room.to_owned(),
            ts: ts.to_owned(),
            deleted: true,
            ..Event::default()
        }
    }

    /// The event that makes `amend` to the message `target`, said by
    /// `name` (`author`). A delete names nobody.
    pub fn amendment(
        id: u64,
        code: &RoomCode,
        target: u64,
        (name, author): (&Name, &Author),
        amend: &Amend,
        on: bool,
    ) -> Event {
        let said = Event::new(id, Kind::Edit, code, name, None);
        let event = Event {
            target: Some(target),
            ..said
        };
        match amend {
            Amend::Edit(text) => Event {
                text: Some(text.as_str().to_owned()),
                ..event
            },
            Amend::Delete => Event {
                kind: Kind::Delete,
                name: String::new(),
                ..event
            },
            Amend::React(emoji) => Event {
                kind: Kind::Reaction,
                emoji: Some(emoji.as_str().to_owned()),
                on: Some(on),
                author: Some(author.clone()),
                ..event
            },
        }
    }

    /// Whether `author` may make `amend` to this message as it reads now;
    /// for a reaction, whether it puts it on (else it takes it off).
    pub fn may_amend(&self, author: &Author, amend: &Amend) -> Result<bool, Refused> {
        if self.kind != Kind::Message || self.deleted {
            return Err(Refused::NoSuchMessage);
        }
        match amend {
            Amend::React(emoji) => Ok(!self
                .reactions
                .iter()
                .any(|r| r.emoji == emoji.as_str() && r.authors.contains(author))),
            _ if self.author.as_ref() != Some(author) => Err(Refused::NotYours),
            _ => Ok(true),
        }
    }

    /// This message as it reads after `change` (an edit, a delete or a
    /// reaction of it). Each change sets what it says (a text, deleted, a
    /// reaction on or off), so making one twice is making it once; a
    /// deleted message stays deleted.
    pub fn amended_by(&self, change: &Event) -> Event {
        if self.deleted || change.target != Some(self.id) {
            return self.clone();
        }
        let mut message = self.clone();
        match change.kind {
            Kind::Edit => {
                message.text = change.text.clone();
                message.edited = Some(change.ts.clone());
            }
            Kind::Delete => return Event::placeholder(self.id, &self.room, &self.ts),
            Kind::Reaction => {
                let (Some(emoji), Some(author)) = (&change.emoji, &change.author) else {
                    return message;
                };
                react(
                    &mut message.reactions,
                    emoji,
                    (&change.name, author),
                    change.on == Some(true),
                );
            }
            Kind::Message | Kind::Join | Kind::Leave => {}
        }
        message
    }

    /// Whether `delete` takes this event out of history with the message
    /// it deletes: every change of it (an edit holds its words, a
    /// reaction of the sender their name).
    pub fn goes_with(&self, delete: &Event) -> bool {
        delete.kind == Kind::Delete
            && matches!(self.kind, Kind::Edit | Kind::Reaction)
            && self.target == delete.target
    }
}

/// Puts `author`'s `emoji` on (`on`) or takes it off.
fn react(reactions: &mut Vec<Reactions>, emoji: &str, (name, author): (&str, &Author), on: bool) {
    let at = reactions.iter().position(|r| r.emoji == emoji);
    match (at, on) {
        (Some(at), true) => {
            let group = &mut reactions[at];
            if !group.authors.contains(author) {
                group.names.push(name.to_owned());
                group.authors.push(author.clone());
            }
        }
        (None, true) => reactions.push(Reactions {
            emoji: emoji.to_owned(),
            count: 0,
            names: vec![name.to_owned()],
            authors: vec![author.clone()],
        }),
        (Some(at), false) => {
            let group = &mut reactions[at];
            if let Some(i) = group.authors.iter().position(|a| a == author) {
                group.names.remove(i);
                group.authors.remove(i);
            }
            if group.names.is_empty() {
                reactions.remove(at);
            }
        }
        (None, false) => {}
    }
    for group in reactions {
        group.count = group.names.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(author: &Author) -> Event {
        let code = RoomCode::parse("ABCD").unwrap();
        let name = Name::parse("alice").unwrap();
        Event {
            author: Some(author.clone()),
            ..Event::new(
                1,
                Kind::Message,
                &code,
                &name,
                Some(&Text::parse("hi").unwrap()),
            )
        }
    }

    fn change(id: u64, who: (&str, &Author), amend: &Amend, on: bool) -> Event {
        let code = RoomCode::parse("ABCD").unwrap();
        let name = Name::parse(who.0).unwrap();
        Event::amendment(id, &code, 1, (&name, who.1), amend, on)
    }

    #[test]
    fn only_the_sender_edits_or_deletes_and_anyone_reacts() {
        let (alice, bob) = (Author::of_session("a"), Author::of_session("b"));
        let hi = message(&alice);
        let edit = Amend::Edit(Text::parse("hello").unwrap());
        assert_eq!(hi.may_amend(&alice, &edit), Ok(true));
        assert_eq!(hi.may_amend(&bob, &edit), Err(Refused::NotYours));
        assert_eq!(hi.may_amend(&bob, &Amend::Delete), Err(Refused::NotYours));
        let thumbs = Amend::React(Emoji::parse("👍").unwrap());
        assert_eq!(hi.may_amend(&bob, &thumbs), Ok(true));
        let anonymous = Event {
            author: None,
            ..hi.clone()
        };
        assert_eq!(anonymous.may_amend(&alice, &edit), Err(Refused::NotYours));
        let deleted = hi.amended_by(&change(2, ("alice", &alice), &Amend::Delete, true));
        assert_eq!(
            deleted.may_amend(&bob, &thumbs),
            Err(Refused::NoSuchMessage)
        );
    }

    #[test]
    fn an_edit_rewrites_and_a_delete_leaves_no_words_or_name() {
        let alice = Author::of_session("a");
        let edit = change(
            2,
            ("alice", &alice),
            &Amend::Edit(Text::parse("hello").unwrap()),
            true,
        );
        let edited = message(&alice).amended_by(&edit);
        assert_eq!(edited.text.as_deref(), Some("hello"));
        assert_eq!(edited.edited.as_deref(), Some(edit.ts.as_str()));
        assert_eq!(edited.amended_by(&edit), edited, "twice is once");
        let delete = change(3, ("alice", &alice), &Amend::Delete, true);
        let json = serde_json::to_string(&delete).unwrap();
        assert!(
            !json.contains("alice") && json.contains("\"target\":1"),
            "{json}"
        );
        let gone = edited.amended_by(&delete);
        let json = serde_json::to_string(&gone).unwrap();
        assert!(gone.deleted && gone.author.is_none());
        assert!(
            !json.contains("alice") && !json.contains("hello") && !json.contains("hi\""),
            "{json}"
        );
        assert_eq!(gone.amended_by(&edit), gone, "a deleted message stays so");
        assert!(edit.goes_with(&delete) && !delete.goes_with(&delete));
        let reaction = Event {
            kind: Kind::Reaction,
            ..edit.clone()
        };
        assert!(reaction.goes_with(&delete), "a reaction names who gave it");
    }

    #[test]
    fn a_reaction_toggles_and_counts_by_who_gave_it() {
        let (alice, bob) = (Author::of_session("a"), Author::of_session("b"));
        let thumbs = Amend::React(Emoji::parse("👍").unwrap());
        let heart = Amend::React(Emoji::parse("❤").unwrap());
        let mut hi = message(&alice);
        hi = hi.amended_by(&change(2, ("bob", &bob), &thumbs, true));
        hi = hi.amended_by(&change(3, ("alice", &alice), &thumbs, true));
        hi = hi.amended_by(&change(4, ("alice", &alice), &heart, true));
        hi = hi.amended_by(&change(5, ("alice", &alice), &thumbs, true));
        assert_eq!(hi.reactions.len(), 2);
        assert_eq!(
            (hi.reactions[0].count, &hi.reactions[0].names[..]),
            (2, &["bob".to_string(), "alice".into()][..])
        );
        assert_eq!(hi.reactions[1].emoji, "❤️");
        assert_eq!(
            hi.may_amend(&bob, &thumbs),
            Ok(false),
            "on: the next takes it off"
        );
        hi = hi.amended_by(&change(6, ("bob", &bob), &thumbs, false));
        hi = hi.amended_by(&change(7, ("alice", &alice), &thumbs, false));
        hi = hi.amended_by(&change(8, ("alice", &alice), &heart, false));
        assert!(hi.reactions.is_empty());
        assert!(!serde_json::to_string(&hi).unwrap().contains("reactions"));
    }

    #[test]
    fn reactions_are_the_short_set_only() {
        for emoji in REACTIONS {
            assert_eq!(Emoji::parse(emoji).unwrap().as_str(), emoji);
        }
        for bad in ["", "x", "👍👍", "🏳️‍🌈", "👍\u{300}", "<b>"] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }
}
