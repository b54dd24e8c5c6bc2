//! The session: one server-side record of who someone is in each room
//! they joined (`{code → name}`), named by an unguessable random id (128
//! bits from the OS). A browser carries the id as its cookie, a script as
//! its bearer token: the same record either way.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cookie::{Cookie, SameSite};

use crate::model::{Author, Name, RoomCode};

/// The cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "roomcast_session";

/// The cookie's name over HTTPS. A browser keeps a `__Host-` cookie only
/// when this very host sets it, Secure, for Path=/: no sibling subdomain
/// and no plain-HTTP page can plant one to fix a visitor's session.
pub const SECURE_COOKIE_NAME: &str = "__Host-roomcast_session";

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// The session a `Cookie` header names: the one cookie of this site's
/// name (see [`SECURE_COOKIE_NAME`]). Two of them mean one was planted
/// (by a sibling subdomain, say): then neither counts, rather than guess.
pub fn from_cookies(header: &str, secure: bool) -> Option<SessionId> {
    let name = cookie_name(secure);
    let mut ours = Cookie::split_parse(header)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name);
    let first = ours.next()?;
    if ours.next().is_some() {
        return None;
    }
    first.value().parse().ok()
}

/// The session's id: the cookie's value and the bearer token. Only ever
/// made by [`SessionId::random`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

/// Someone's part in one room: the name they hold there, and whether
/// they only watch (listed, never announced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participation {
    pub name: Name,
    pub watch: bool,
}

/// Every room a session has joined, with its part in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub rooms: BTreeMap<RoomCode, Participation>,
}

impl SessionId {
    pub fn random() -> SessionId {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).expect("the OS random source is always there");
        SessionId(bytes)
    }

    /// The id as a number, for what cannot name this type (the room's
    /// updates: `model` comes before sessions).
    pub fn number(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Who this session is as the sender of a message (never its id).
    pub fn author(&self) -> Author {
        Author::of_session(&self.to_string())
    }

    /// The id whose [`SessionId::number`] this is.
    pub fn from_number(number: u128) -> SessionId {
        SessionId(number.to_be_bytes())
    }

    /// The `Set-Cookie` value: HttpOnly (page script never needs it),
    /// SameSite=Lax (sent on top-level navigation, not on cross-site
    /// posts), kept by the browser as long as the server keeps the
    /// session unused, and Secure, under its `__Host-` name, when the site
    /// is served over HTTPS.
    pub fn set_cookie(&self, secure: bool, lasts: Duration) -> String {
        let max_age = cookie::time::Duration::seconds(lasts.as_secs() as i64);
        Cookie::build((cookie_name(secure), self.to_string()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(max_age)
            .secure(secure)
            .build()
            .to_string()
    }
}

/// Not a session id: not 32 hexadecimal digits.
#[derive(Debug)]
pub struct NotAnId;

impl FromStr for SessionId {
    type Err = NotAnId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(NotAnId);
        }
        let mut bytes = [0; 16];
        for (byte, pair) in bytes.iter_mut().zip(s.chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| NotAnId)?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(NotAnId);
            }
            *byte = u8::from_str_radix(text, 16).map_err(|_| NotAnId)?;
        }
        Ok(SessionId(bytes))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Session {
    /// This session's part in `room`, if it joined it.
    pub fn in_room(&self, room: &RoomCode) -> Option<&Participation> {
        self.rooms.get(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_http_only_lax_site_wide_and_lasts() {
        let id = SessionId::random();
        let month = Duration::from_secs(30 * 86_400);
        let cookie = Cookie::parse(id.set_cookie(false, month)).unwrap();
        assert_eq!(cookie.name(), COOKIE_NAME);
        assert_eq!(cookie.value().parse::<SessionId>().unwrap(), id);
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.max_age().map(|a| a.whole_days()), Some(30));
        assert_eq!(cookie.secure(), None);
        let secure = Cookie::parse(id.set_cookie(true, month)).unwrap();
        assert_eq!(secure.secure(), Some(true));
        assert_eq!(secure.name(), SECURE_COOKIE_NAME);
        assert_eq!(secure.path(), Some("/"));
        assert_eq!(secure.domain(), None, "__Host- cookies have none");
    }

    #[test]
    fn a_cookie_counts_only_alone_and_under_the_name_for_its_scheme() {
        let (id, planted) = (SessionId::random(), SessionId::random());
        let plain = format!("{COOKIE_NAME}={id}");
        let host = format!("{SECURE_COOKIE_NAME}={id}");
        assert_eq!(from_cookies(&format!("a=1; {plain}; b=2"), false), Some(id));
        assert_eq!(from_cookies(&host, true), Some(id));
        assert_eq!(from_cookies(&plain, true), None, "plain over HTTPS");
        assert_eq!(from_cookies(&host, false), None);
        let two = format!("{plain}; {COOKIE_NAME}={planted}");
        assert_eq!(from_cookies(&two, false), None, "two: neither");
        let two = format!("{host}; {SECURE_COOKIE_NAME}={planted}");
        assert_eq!(from_cookies(&two, true), None);
        assert_eq!(from_cookies(&format!("{host}; {plain}"), true), Some(id));
        assert_eq!(from_cookies("roomcast_session=alice", false), None);
    }

    #[test]
    fn ids_are_128_random_bits_in_hex_and_nothing_else_parses() {
        let id = SessionId::random();
        assert_ne!(id, SessionId::random());
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<SessionId>().unwrap(), id);
        for bad in [
            "alice",
            "",
            &text[1..],
            &format!("{text}0"),
            &"+1".repeat(16),
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?}");
        }
        let multibyte = format!("é{}", &text[2..]);
        assert!(multibyte.parse::<SessionId>().is_err());
    }
}
