//! The HTML pages: handlebars templates (compiled into the binary, strict
//! mode, so a missing field is an error and not a blank) and the views they
//! render. Handlebars escapes every `{{value}}`, so user text stays text.

use handlebars::{Handlebars, RenderError};
use serde::Serialize;

use crate::model::amend::REACTIONS;
use crate::model::{Author, Kind, Name, Names, Present, Recorded, RoomCode};

const TEMPLATES: [(&str, &str); 5] = [
    ("device", include_str!("../templates/device.hbs")),
    ("layout", include_str!("../templates/layout.hbs")),
    ("home", include_str!("../templates/home.hbs")),
    ("room", include_str!("../templates/room.hbs")),
    ("not_found", include_str!("../templates/not_found.hbs")),
];

/// The compiled templates; built once at start and shared.
pub struct Pages {
    handlebars: Handlebars<'static>,
}

/// The home form, with whatever was typed and what was wrong with it.
#[derive(Debug, Default, Serialize)]
pub struct HomeView {
    pub name: String,
    pub code: String,
    /// A private room's key, from its invite link (sent back with the form).
    pub key: String,
    pub error: Option<String>,
    /// The error is the code's (no such room): the code field has focus,
    /// marked invalid, and the main button joins whatever code comes next.
    pub code_error: bool,
    pub your_rooms: Vec<YourRoom>,
}

/// One of the rooms the visitor's session is in, for the "your rooms"
/// list (newest activity first).
#[derive(Debug, Clone, Serialize)]
pub struct YourRoom {
    pub code: String,
    pub name: String,
    /// The room's newest event's time (RFC 3339), if it has any.
    pub last: Option<String>,
    /// Its id (0 for none): the page counts unread messages after it.
    pub last_id: u64,
}

/// A room as one member sees it.
#[derive(Debug, Serialize)]
pub struct RoomView {
    pub code: String,
    pub invite: String,
    pub me: String,
    /// The members, each online or away.
    pub members: Vec<Present>,
    pub member_count: usize,
    /// Who only watches, shown after the members ("and logbot watching").
    pub watchers: Vec<String>,
    pub events: Vec<EventView>,
    /// The ids of the oldest and newest events read for the page, shown
    /// or not (a change of a message has no line of its own).
    pub first_id: u64,
    pub last_id: u64,
    /// [`notice`] for every kind that has one, as JSON, for the page script.
    pub notices: String,
    /// Text to put back in the message box after a refused no-JS post.
    pub draft: String,
    pub error: Option<String>,
    /// The session's other rooms.
    pub your_rooms: Vec<YourRoom>,
    /// Which part of the room the log shows: "live" (the newest, kept up
    /// by the page script), "older" (a page of what came before, by link)
    /// or "search" (the hits of a search). Only "live" is followed.
    pub view: &'static str,
    /// The emoji a message can be given (`model::REACTIONS`).
    pub reaction_set: [&'static str; REACTIONS.len()],
    /// The `Idempotency-Key` the page's plain form sends: made for each
    /// page, so sending the same form again stores nothing twice.
    pub post_key: String,
    /// Where the page of the events before these is (none at the start).
    pub older: Option<String>,
    /// The words searched for, in the "search" view, and what was found
    /// (or why they are no search).
    pub searched: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: u64,
    pub kind: &'static str,
    pub name: String,
    pub text: Option<String>,
    /// The text in plain runs and links, as the page script cuts a live
    /// message: links are clickable in history too, also without JS.
    pub segments: Vec<Segment>,
    pub ts: String,
    /// "H:MM UTC" (no leading zero), shown until the page script writes
    /// local time.
    pub time: String,
    pub mine: bool,
    /// How a kind other than a message reads: "NAME joined".
    pub notice: Option<&'static str>,
    /// In the "search" view: the page with this event among those around
    /// it, scrolled to it.
    pub context: Option<String>,
    /// When a message was last edited, and that it was deleted (then it
    /// has no name or text).
    pub edited: Option<String>,
    pub deleted: bool,
    pub reactions: Vec<ReactionView>,
}

/// One emoji on a message: how many gave it, who, and whether the reader
/// is among them (the button then takes it off).
#[derive(Debug, Serialize)]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    /// "al, bo", for the button's title.
    pub names: String,
    /// The same as a JSON array, for the page script.
    pub names_json: String,
    pub mine: bool,
}

/// How an event of `kind` reads in the page when it is not a message:
/// `NAME joined`. The one rule, for the server's template and (through
/// the room's `data-notices`) the page script alike; a kind without one
/// is shown as a message if it is one, and otherwise not at all.
fn notice(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Join => Some("joined"),
        Kind::Leave => Some("left"),
        // A message shows as one; a change of one, in the message.
        Kind::Message | Kind::Edit | Kind::Delete | Kind::Reaction => None,
    }
}

/// Every kind's notice, as the JSON object the page script reads.
fn notices_json() -> String {
    let notices: std::collections::BTreeMap<&str, &str> = Kind::ALL
        .into_iter()
        .filter_map(|kind| Some((kind.as_str(), notice(kind)?)))
        .collect();
    serde_json::to_string(&notices).expect("a map of strings always serializes")
}

#[derive(Serialize)]
struct Page<'a, T> {
    title: String,
    #[serde(flatten)]
    view: &'a T,
}

impl Pages {
    /// The templates, registered once at start (strict: a missing field is
    /// an error, not an empty string).
    pub fn load() -> Pages {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        for (name, source) in TEMPLATES {
            handlebars
                .register_template_string(name, source)
                .expect("templates are checked by the pages tests");
        }
        Pages { handlebars }
    }

    pub fn home(&self, view: &HomeView) -> Result<String, RenderError> {
        self.render("home", "roomcast", view)
    }

    pub fn room(&self, view: &RoomView) -> Result<String, RenderError> {
        self.render("room", &format!("{} · roomcast", view.code), view)
    }

    /// The device-link page: with `link`, the link to open on the other
    /// device; else the button (posting to `action`) that uses one.
    pub fn device(&self, link: Option<&str>, action: &str) -> Result<String, RenderError> {
        #[derive(Serialize)]
        struct Device<'a> {
            link: Option<&'a str>,
            action: &'a str,
        }
        let view = Device { link, action };
        self.render("device", "Another device · roomcast", &view)
    }

    pub fn not_found(&self, message: &str) -> Result<String, RenderError> {
        self.refused("Not found", message)
    }

    /// A page that only says why what was asked for is not here.
    pub fn refused(&self, heading: &str, message: &str) -> Result<String, RenderError> {
        #[derive(Serialize)]
        struct Refused<'a> {
            heading: &'a str,
            message: &'a str,
        }
        let title = format!("{heading} · roomcast");
        self.render("not_found", &title, &Refused { heading, message })
    }

    fn render<T: Serialize>(
        &self,
        template: &str,
        title: &str,
        view: &T,
    ) -> Result<String, RenderError> {
        let page = Page {
            title: title.to_owned(),
            view,
        };
        self.handlebars.render(template, &page)
    }
}

impl RoomView {
    pub fn new(
        code: &RoomCode,
        invite: String,
        (me, author): (&Name, &Author),
        names: Names,
        history: &[std::sync::Arc<Recorded>],
    ) -> RoomView {
        // A change of a message is shown in the message: it has no line.
        let events: Vec<EventView> = (history.iter())
            .filter(|e| !e.event.kind.amends())
            .map(|e| EventView::new(e, author))
            .collect();
        RoomView {
            code: code.to_string(),
            invite,
            me: me.to_string(),
            member_count: names.members.len(),
            // Whoever reads the page is here, whether or not their
            // stream has opened yet.
            members: (names.members.into_iter())
                .map(|p| Present {
                    online: p.online || p.name == *me,
                    name: p.name,
                })
                .collect(),
            watchers: names.watchers.iter().map(|p| p.name.to_string()).collect(),
            first_id: history.first().map_or(0, |e| e.event.id),
            last_id: history.last().map_or(0, |e| e.event.id),
            events,
            notices: notices_json(),
            draft: String::new(),
            error: None,
            your_rooms: Vec::new(),
            view: "live",
            reaction_set: REACTIONS,
            post_key: crate::model::RoomKey::random().as_str().to_string(),
            older: None,
            searched: None,
            summary: None,
        }
    }
}

/// A run of a message's text: a link, or plain.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub link: bool,
}

/// `text` cut into plain runs and links by the page script's rule
/// (`/\bhttps?:\/\/[^\s<>"']+/`): `http://` or `https://` with no ASCII
/// word character before it, and at least one character after it, up to
/// whitespace or one of `<>"'`.
fn segments(text: &str) -> Vec<Segment> {
    let ends_link = |c: char| c.is_whitespace() || c == '\u{feff}' || "<>\"'".contains(c);
    let mut out = Vec::new();
    let (mut plain_from, mut at) = (0, 0);
    while let Some(c) = text[at..].chars().next() {
        let rest = &text[at..];
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| rest.starts_with(s));
        let word_before = text[..at]
            .bytes()
            .next_back()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if let (Some(scheme), false) = (scheme, word_before) {
            let end = rest.find(ends_link).map_or(text.len(), |e| at + e);
            if end > at + scheme.len() {
                if plain_from < at {
                    out.push(Segment {
                        text: text[plain_from..at].to_string(),
                        link: false,
                    });
                }
                out.push(Segment {
                    text: text[at..end].to_string(),
                    link: true,
                });
                (plain_from, at) = (end, end);
                continue;
            }
        }
        at += c.len_utf8();
    }
    if plain_from < text.len() {
        out.push(Segment {
            text: text[plain_from..].to_string(),
            link: false,
        });
    }
    out
}

/// "H:MM UTC" of an RFC 3339 time, as a clock reads (no leading zero).
fn clock(ts: &str) -> String {
    let (Some(hour), Some(minute)) = (ts.get(11..13), ts.get(14..16)) else {
        return String::new();
    };
    let hour = hour.strip_prefix('0').unwrap_or(hour);
    format!("{hour}:{minute} UTC")
}

impl EventView {
    /// `event` as the participant `me` sees it: their own messages (by
    /// who sent them, not by name) can be edited and deleted.
    fn new(recorded: &Recorded, me: &Author) -> EventView {
        let event = &recorded.event;
        let reactions = event.reactions.iter().map(|r| ReactionView {
            emoji: r.emoji.clone(),
            count: r.count,
            names: r.names.join(", "),
            names_json: serde_json::to_string(&r.names).expect("strings always serialize"),
            mine: r.authors.contains(me),
        });
        EventView {
            id: event.id,
            kind: event.kind.as_str(),
            name: event.name.clone(),
            text: event.text.clone(),
            segments: event.text.as_deref().map(segments).unwrap_or_default(),
            ts: event.ts.clone(),
            time: clock(&event.ts),
            mine: event.kind == Kind::Message && event.author.as_ref() == Some(me),
            notice: notice(event.kind),
            context: None,
            edited: event.edited.clone(),
            deleted: event.deleted,
            reactions: reactions.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{timestamp, Event, Reactions, Text};
    use std::sync::Arc;

    /// `text` cuts into `want`: (run, is a link).
    fn cuts(text: &str, want: &[(&str, bool)]) {
        let got = segments(text);
        let got: Vec<(&str, bool)> = got.iter().map(|s| (s.text.as_str(), s.link)).collect();
        assert_eq!(got, want, "{text:?}");
    }

    #[test]
    fn links_are_cut_out_as_the_page_script_cuts_them() {
        cuts(
            "see https://a.example/x?y=1 now",
            &[
                ("see ", false),
                ("https://a.example/x?y=1", true),
                (" now", false),
            ],
        );
        cuts("http://b.example", &[("http://b.example", true)]);
        // A word character before it, or nothing after it: no link.
        cuts("xhttp://c.example", &[("xhttp://c.example", false)]);
        cuts("http:// alone", &[("http:// alone", false)]);
        // Quotes and angle brackets end a link; non-ASCII before one is no
        // word character (as in JavaScript's \b).
        cuts(
            "é<https://d.example/\"q\">",
            &[
                ("é<", false),
                ("https://d.example/", true),
                ("\"q\">", false),
            ],
        );
        cuts("javascript:alert(1)", &[("javascript:alert(1)", false)]);
    }

    #[test]
    fn clocks_have_no_leading_zero() {
        assert_eq!(clock("2026-12-02T04:13:09.000Z"), "4:13 UTC");
        assert_eq!(clock("2026-12-02T16:05:00.000Z"), "16:05 UTC");
        assert_eq!(clock("2026-12-02T00:07:00.000Z"), "0:07 UTC");
        assert_eq!(clock("bad"), "");
    }

    #[test]
    fn home_keeps_input_and_escapes_it() {
        let view = HomeView {
            name: "<b>al</b>".into(),
            code: "ab\"cd".into(),
            key: String::new(),
            error: Some("Please enter a room code.".into()),
            code_error: true,
            your_rooms: vec![YourRoom {
                code: "WXYZ".into(),
                name: "<i>al</i>".into(),
                last: None,
                last_id: 0,
            }],
        };
        let html = Pages::load().home(&view).unwrap();
        assert!(html.contains("&lt;b&gt;al&lt;/b&gt;"));
        assert!(html.contains("ab&quot;cd"));
        assert!(html.contains("Please enter a room code."));
        assert!(!html.contains("<b>al"));
        assert!(
            html.contains(r#"href="/rooms/WXYZ""#),
            "your rooms are listed"
        );
        assert!(html.contains("&lt;i&gt;al&lt;/i&gt;"));
    }

    #[test]
    fn room_renders_history_members_and_escapes_text() {
        let code = RoomCode::parse("ABCD").unwrap();
        let me = Name::parse("al").unwrap();
        let text = Text::parse("<script>alert(1)</script>").unwrap();
        let history = vec![
            Arc::new(Recorded::new(Event::new(1, Kind::Join, &code, &me, None))),
            Arc::new(Recorded::new(Event::new(
                2,
                Kind::Message,
                &code,
                &me,
                Some(&text),
            ))),
        ];
        let view = RoomView::new(
            &code,
            "http://x/?code=ABCD".into(),
            (&me, &Author::of_session("al's")),
            Names {
                members: vec![
                    present("al", false),
                    present("bo", false),
                    present("cy", true),
                ],
                watchers: vec![present("logbot", true)],
            },
            &history,
        );
        let html = Pages::load().room(&view).unwrap();
        assert!(html.contains("logbot"), "watchers are shown");
        // The reader is here; the others as they are.
        assert!(html.contains(r#"<li class="online" title="online"><span class="dot" aria-hidden="true"></span><span class="name">al</span><"#));
        assert!(html.contains(r#"<li class="away" title="away"><span class="dot" aria-hidden="true"></span><span class="name">bo</span><"#));
        assert!(html.contains(r#"cy</span><span class="visually-hidden"> (online)"#));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains(r#"data-last-id="2""#));
        assert!(html.contains("al joined"));
        assert!(html.contains("<title>ABCD · roomcast</title>"));
    }

    #[test]
    fn every_kind_but_a_message_has_one_notice_for_template_and_script() {
        for kind in Kind::ALL {
            let shown_apart = kind == Kind::Message || kind.amends();
            assert_eq!(notice(kind).is_none(), shown_apart, "{kind}");
        }
        assert_eq!(notices_json(), r#"{"join":"joined","leave":"left"}"#);
        let code = RoomCode::parse("ABCD").unwrap();
        let me = Name::parse("al").unwrap();
        let author = Author::of_session("al's");
        let view = RoomView::new(&code, String::new(), (&me, &author), Names::default(), &[]);
        let html = Pages::load().room(&view).unwrap();
        assert!(
            html.contains(r#"data-notices="{&quot;join&quot;:&quot;joined&quot;"#),
            "{html}"
        );
    }

    #[test]
    fn changes_show_and_only_ones_own_messages_offer_edit_and_delete() {
        let code = RoomCode::parse("ABCD").unwrap();
        let al = Name::parse("al").unwrap();
        let (mine, theirs) = (Author::of_session("al's"), Author::of_session("other al's"));
        let said = |id, text: &str, author: &Author| Event {
            author: Some(author.clone()),
            ..Event::new(
                id,
                Kind::Message,
                &code,
                &al,
                Some(&Text::parse(text).unwrap()),
            )
        };
        let edited = Event {
            edited: Some("2026-12-04T10:00:00.000Z".into()),
            reactions: vec![Reactions {
                emoji: "👍".into(),
                count: 2,
                names: vec!["bo".into(), "al".into()],
                authors: vec![Author::of_session("bo's"), mine.clone()],
            }],
            ..said(1, "fixed typo", &mine)
        };
        // Someone who had the name before, in this room: not the reader.
        let same_name = said(2, "an older al's words", &theirs);
        let deleted = Event::placeholder(3, code.as_str(), &timestamp());
        let edit = Event {
            target: Some(1),
            ..Event::new(
                4,
                Kind::Edit,
                &code,
                &al,
                Some(&Text::parse("fixed typo").unwrap()),
            )
        };
        let history: Vec<_> = [edited, same_name, deleted, edit]
            .into_iter()
            .map(|e| Arc::new(Recorded::new(e)))
            .collect();
        let view = RoomView::new(
            &code,
            String::new(),
            (&al, &mine),
            Names::default(),
            &history,
        );
        assert!(view.events[0].mine && !view.events[1].mine && !view.events[2].mine);
        let html = Pages::load().room(&view).unwrap();
        assert!(html.contains("(edited)"));
        assert!(
            html.contains(r#"aria-pressed="true" title="bo, al""#),
            "{html}"
        );
        assert!(html.contains(r#"<span class="count">2</span>"#));
        assert_eq!(
            html.matches(r#"action="/rooms/ABCD/messages/1/edit""#)
                .count(),
            1
        );
        assert_eq!(
            html.matches(r#"action="/rooms/ABCD/messages/1/delete""#)
                .count(),
            1
        );
        assert!(!html.contains("/messages/2/edit") && !html.contains("/messages/2/delete"));
        assert!(html.contains(r#"action="/rooms/ABCD/messages/2/reactions""#));
        assert!(html.contains("message deleted"));
        assert!(
            !html.contains("/messages/3/"),
            "a deleted message offers nothing"
        );
    }

    #[test]
    fn not_found_links_home() {
        let html = Pages::load()
            .not_found("Room ZZZZ does not exist.")
            .unwrap();
        assert!(html.contains("Room ZZZZ does not exist."));
        assert!(html.contains(r#"href="/""#));
    }

    fn present(name: &str, online: bool) -> Present {
        let name = Name::parse(name).unwrap();
        Present { name, online }
    }
}
