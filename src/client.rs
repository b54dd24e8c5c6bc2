//! Who is asking: the [`Client`] at the other end of the connection, the
//! [`Visitor`] its session cookie names, and the [`VisitorKey`] its limits
//! are counted under.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use warp::http::HeaderMap;

use crate::session::{Session, SessionId};

/// Who is at the other end, as the routes see it: the peer, or what a
/// trusted proxy says about the client behind it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: IpAddr,
    /// The request came over HTTPS (as a trusted proxy says).
    pub https: bool,
    /// It came through a trusted proxy, whose X-Forwarded-* are believed.
    pub via_proxy: bool,
}

/// The browser's session, when its cookie names a live one.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub id: SessionId,
    pub session: Arc<Session>,
    /// It came by the session cookie (a browser), not a bearer token.
    pub by_cookie: bool,
}

/// Who is charged for a request: the session if there is one, and always
/// the client's address (so a fresh session buys nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorKey {
    pub session: Option<SessionId>,
    pub address: IpAddr,
}

impl VisitorKey {
    pub fn of(visitor: Option<&Visitor>, client: Client) -> VisitorKey {
        VisitorKey {
            session: visitor.map(|v| v.id),
            address: client.ip,
        }
    }

    /// A request with no session, from `address`.
    pub fn address(address: IpAddr) -> VisitorKey {
        VisitorKey {
            session: None,
            address,
        }
    }
}

impl Client {
    /// Whether this site is served over HTTPS for this request: always
    /// with `--secure-cookies`, else as a trusted proxy says. The cookie's
    /// name and the site's scheme both follow it, so they always agree.
    pub fn over_https(self, secure_cookies: bool) -> bool {
        secure_cookies || self.https
    }

    /// For a request from `peer`: the X-Forwarded-* headers count only if
    /// `peer` is a trusted proxy. The client is then the nearest address in
    /// X-Forwarded-For that is not itself a trusted proxy.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Client {
                ip: peer,
                https: false,
                via_proxy: false,
            };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        let ip = forwarded
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer);
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok());
        // The last value is the one the nearest proxy set.
        let https = proto
            .and_then(|p| p.rsplit(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Client {
            ip,
            https,
            via_proxy: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarded = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = Client::of(proxy, &forwarded, &trusted);
        assert_eq!(
            client.ip,
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "nearest untrusted hop"
        );
        assert!(client.https);

        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let client = Client::of(stranger, &forwarded, &trusted);
        assert_eq!(client.ip, stranger, "a stranger's headers are ignored");
        assert!(!client.https);

        let plain = Client::of(
            proxy,
            &headers(&[("x-forwarded-proto", "https, http")]),
            &trusted,
        );
        assert!(!plain.https, "the nearest proxy's word counts");
        assert_eq!(plain.ip, proxy, "no X-Forwarded-For: the proxy itself");
    }
}
