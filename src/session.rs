//! The session cookie and what it stands for: an unguessable random token
//! (uuid v4, 122 random bits) naming a server-side record {name, room}.

use std::fmt;
use std::str::FromStr;

use cookie::{Cookie, SameSite};
use uuid::Uuid;

use crate::model::{Name, RoomCode};

pub const COOKIE_NAME: &str = "roomcast_session";

/// The token in the cookie. Only ever made by [`SessionId::random`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Uuid);

/// Who a browser is, and in which room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub name: Name,
    pub room: RoomCode,
}

impl SessionId {
    pub fn random() -> SessionId {
        SessionId(Uuid::new_v4())
    }

    /// The `Set-Cookie` value: HttpOnly (page script never needs it),
    /// SameSite=Lax (sent on top-level navigation, not on cross-site posts),
    /// and Secure when the site is served over HTTPS.
    pub fn set_cookie(&self, secure: bool) -> String {
        Cookie::build((COOKIE_NAME, self.to_string()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(secure)
            .build()
            .to_string()
    }
}

impl FromStr for SessionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(SessionId)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.simple().fmt(f)
    }
}

impl Session {
    /// This session's name, if it belongs to `room`.
    pub fn name_in(&self, room: &RoomCode) -> Option<&Name> {
        (&self.room == room).then_some(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_http_only_lax_and_site_wide() {
        let id = SessionId::random();
        let cookie = Cookie::parse(id.set_cookie(false)).unwrap();
        assert_eq!(cookie.name(), COOKIE_NAME);
        assert_eq!(cookie.value().parse::<SessionId>().unwrap(), id);
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.secure(), None);
        let secure = Cookie::parse(id.set_cookie(true)).unwrap();
        assert_eq!(secure.secure(), Some(true));
    }

    #[test]
    fn tokens_are_not_guessable_from_each_other() {
        assert_ne!(SessionId::random(), SessionId::random());
        assert!("alice".parse::<SessionId>().is_err());
    }
}
