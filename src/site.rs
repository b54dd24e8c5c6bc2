//! Where this site is, as its visitors reach it: the scheme and host that
//! invite links are written with and that a browser's `Origin` must name.
//! Told by `--public-url`, else by a trusted proxy (X-Forwarded-Proto and
//! X-Forwarded-Host), else read from the request's Host, which is only
//! good enough to compare an `Origin` against, never to write into a link
//! (anyone can send any Host).

use std::fmt;

use crate::client::Client;

/// A site's origin: `scheme://host[:port]`, lower case, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// `http://` or `https://` and a host, with nothing after it but an
    /// optional `/` (for `--public-url`).
    pub fn parse(input: &str) -> Result<Origin, String> {
        let bad = || {
            format!("{input:?} is not a site's address: give scheme and host, as https://chat.example.com")
        };
        let (scheme, rest) = input.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let host = rest.strip_suffix('/').unwrap_or(rest);
        let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        if !matches!(scheme.as_str(), "http" | "https")
            || host.is_empty()
            || !host.chars().all(plain)
        {
            return Err(bad());
        }
        Ok(Origin::of(scheme == "https", host))
    }

    /// As a browser writes it: lower case, without the scheme's own port.
    fn of(https: bool, host: &str) -> Origin {
        let scheme = if https { "https" } else { "http" };
        let default_port = if https { ":443" } else { ":80" };
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix(default_port).unwrap_or(&host);
        Origin(format!("{scheme}://{host}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// This site as one request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// What an `Origin` from this site's own pages says.
    pub origin: Option<Origin>,
    /// Whether `origin` was told (by `--public-url` or a trusted proxy),
    /// so links may carry it.
    pub told: bool,
}

impl Site {
    /// For a request from `client` with these Host and X-Forwarded-Host
    /// headers; `https` is whether the site is served over HTTPS (as
    /// `--secure-cookies` says) when nobody else tells.
    pub fn of(
        public: Option<&Origin>,
        client: Client,
        host: Option<&str>,
        forwarded_host: Option<&str>,
        https: bool,
    ) -> Site {
        if let Some(public) = public {
            return Site {
                origin: Some(public.clone()),
                told: true,
            };
        }
        if client.via_proxy {
            // The last value is the one the nearest proxy set.
            let forwarded = forwarded_host
                .and_then(|h| h.rsplit(',').next())
                .map(str::trim);
            let host = forwarded.filter(|h| !h.is_empty()).or(host);
            return Site {
                origin: host.map(|host| Origin::of(client.https, host)),
                told: true,
            };
        }
        Site {
            origin: host.map(|host| Origin::of(client.over_https(https), host)),
            told: false,
        }
    }

    /// `path` as a link: absolute when the site's address was told, else
    /// as it is (the page makes it whole from where the browser is).
    pub fn link(&self, path: &str) -> String {
        match (&self.origin, self.told) {
            (Some(origin), true) => format!("{origin}{path}"),
            _ => path.to_string(),
        }
    }

    /// Whether a browser's `Origin` header names this site.
    pub fn is(&self, origin: &str) -> bool {
        self.origin
            .as_ref()
            .is_some_and(|ours| ours.as_str().eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(via_proxy: bool, https: bool) -> Client {
        Client {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            https,
            via_proxy,
        }
    }

    #[test]
    fn a_public_url_is_a_scheme_and_host_only() {
        let origin = Origin::parse("HTTPS://Chat.Example.com/").unwrap();
        assert_eq!(origin.as_str(), "https://chat.example.com");
        assert!(Origin::parse("http://[::1]:3030").is_ok());
        let default_port = Origin::parse("https://chat.example.com:443").unwrap();
        assert_eq!(default_port, origin, "as a browser's Origin says it");
        for bad in [
            "chat.example.com",
            "ftp://x",
            "https://",
            "https://x/path",
            "https://x y",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_carry_a_told_address_and_never_an_untrusted_host() {
        let public = Origin::parse("https://chat.example.com").unwrap();
        let site = Site::of(
            Some(&public),
            client(false, false),
            Some("evil.example"),
            None,
            false,
        );
        assert_eq!(site.link("/join/X"), "https://chat.example.com/join/X");
        assert!(site.is("https://chat.example.com"));
        assert!(!site.is("http://chat.example.com"), "the scheme counts");

        let proxied = Site::of(
            None,
            client(true, true),
            Some("10.0.0.5"),
            Some("chat.example.com"),
            false,
        );
        assert_eq!(proxied.link("/j"), "https://chat.example.com/j");

        let direct = Site::of(
            None,
            client(false, false),
            Some("evil.example"),
            Some("x.example"),
            false,
        );
        assert_eq!(direct.link("/j"), "/j", "a Host anyone can send");
        assert!(
            direct.is("http://evil.example"),
            "but it is this request's own"
        );
        assert!(!direct.is("https://evil.example"));
        assert!(
            !direct.is("http://x.example"),
            "X-Forwarded-Host from no proxy"
        );
    }
}
