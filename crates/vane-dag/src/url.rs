//! URLs of the config (a webhook's `url`), parsed once, when the config is loaded.
//!
//! A small parser of our own rather than the `url` crate: vane needs absolute `scheme://`
//! URLs with an authority (RFC 3986 §3) taken apart into host, port, path and query, with an
//! error that points at the offending character; not the WHATWG rules for every scheme, IDNA
//! or relative references, which would double the size of the dependency tree of `vane-dag`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// An absolute URL: `scheme://[userinfo@]host[:port][/path][?query][#fragment]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url(Box<Parts>);

// Boxed: a URL sits in enums (a channel's kind) beside variants much smaller than it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Parts {
    text: String,
    scheme: String,
    userinfo: Option<String>,
    host: Host,
    port: Option<u16>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

/// The host of a [`Url`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A registered name, in lower case: `hooks.slack.com`.
    Name(String),
    Ipv4(Ipv4Addr),
    /// Written in brackets in the URL: `https://[::1]/hook`.
    Ipv6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// Why a text is not a URL: what is wrong, what to do, and where (bytes of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub message: String,
    pub hint: String,
    pub range: Range<usize>,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.hint)
    }
}

impl std::error::Error for UrlError {}

fn fail(message: impl Into<String>, hint: impl Into<String>, range: Range<usize>) -> UrlError {
    UrlError {
        message: message.into(),
        hint: hint.into(),
        range,
    }
}

/// Characters a host name may hold besides letters and digits (RFC 3986 unreserved,
/// sub-delims and percent-encoding).
const HOST_CHARS: &str = "-._~%!$&'()*+,;=";

impl Url {
    /// Parses `text` as an absolute URL with a host.
    ///
    /// # Errors
    /// What is wrong and where: no `scheme://`, an empty or malformed host, a bad port, spaces.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        if let Some((at, c)) = text
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(fail(
                format!("`{text}` has a space or control character in it"),
                "write the URL without spaces; encode a space in a path or query as %20",
                at..at + c.len_utf8(),
            ));
        }
        let Some(colon) = text.find("://") else {
            return Err(fail(
                format!("`{text}` is not a URL: it has no scheme"),
                "write the whole URL, starting with https:// (or http://)",
                0..text.len(),
            ));
        };
        let scheme = &text[..colon];
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return Err(fail(
                format!("`{scheme}` is not a URL scheme"),
                "start the URL with https:// (or http://)",
                0..colon.max(1),
            ));
        }
        let start = colon + 3;
        let end = text[start..]
            .find(['/', '?', '#'])
            .map_or(text.len(), |i| start + i);
        let authority = &text[start..end];
        let (userinfo, host_start) = match authority.rfind('@') {
            Some(i) => (Some(authority[..i].to_owned()), start + i + 1),
            None => (None, start),
        };
        let host_port = &text[host_start..end];
        let (host, port_at) = if let Some(inner) = host_port.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return Err(fail(
                    format!("the IPv6 address in `{text}` has no closing `]`"),
                    "write an IPv6 host in brackets: https://[::1]:8443/hook",
                    host_start..end,
                ));
            };
            let ip: Ipv6Addr = inner[..close].parse().map_err(|_| {
                fail(
                    format!("`{}` is not an IPv6 address", &inner[..close]),
                    "write an IPv6 host in brackets, e.g. https://[::1]/hook or https://[2001:db8::1]/hook",
                    host_start..host_start + close + 2,
                )
            })?;
            (Host::Ipv6(ip), host_start + close + 2)
        } else {
            let name_end = host_port.rfind(':').map_or(end, |i| host_start + i);
            let name = &text[host_start..name_end];
            if let Some((at, c)) = name
                .char_indices()
                .find(|(_, c)| !c.is_ascii_alphanumeric() && !HOST_CHARS.contains(*c))
            {
                let at = host_start + at;
                return Err(fail(
                    format!("`{name}` is not a host name: `{c}` is not allowed in one"),
                    "write the host as letters, digits, `-` and `.`, or an IP address (IPv6 in brackets: [::1])",
                    at..at + c.len_utf8(),
                ));
            }
            let host = match name.parse::<Ipv4Addr>() {
                Ok(ip) => Host::Ipv4(ip),
                Err(_) => Host::Name(name.to_ascii_lowercase()),
            };
            (host, name_end)
        };
        if matches!(&host, Host::Name(n) if n.is_empty()) {
            return Err(fail(
                format!("`{text}` has no host"),
                "write the host after the scheme: https://HOST/PATH",
                host_start..end.max(host_start + 1).min(text.len().max(1)),
            ));
        }
        let port = match &text[port_at..end] {
            "" => None,
            rest => {
                let digits = rest.strip_prefix(':').unwrap_or(rest);
                let range = port_at..end;
                if !rest.starts_with(':') {
                    return Err(fail(
                        format!("unexpected `{rest}` after the host of `{text}`"),
                        "write a port after the host as :8443",
                        range,
                    ));
                }
                match digits.parse::<u16>() {
                    Ok(port) if digits.chars().all(|c| c.is_ascii_digit()) => Some(port),
                    _ => {
                        return Err(fail(
                            format!("`{digits}` is not a port number"),
                            "a port is a number from 0 to 65535, e.g. :8443; or leave it out for the scheme's default",
                            range,
                        ));
                    }
                }
            }
        };
        let rest = &text[end..];
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_owned())),
            None => (rest, None),
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (rest, None),
        };
        Ok(Url(Box::new(Parts {
            text: text.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
            userinfo,
            host,
            port,
            path: path.to_owned(),
            query,
            fragment,
        })))
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// In lower case: `https`.
    pub fn scheme(&self) -> &str {
        &self.0.scheme
    }

    /// `user:password` before the `@`, if any.
    pub fn userinfo(&self) -> Option<&str> {
        self.0.userinfo.as_deref()
    }

    pub fn host(&self) -> &Host {
        &self.0.host
    }

    /// The port written in the URL.
    pub fn port(&self) -> Option<u16> {
        self.0.port
    }

    /// The port written, or the scheme's (80 for http, 443 for https).
    pub fn port_or_default(&self) -> Option<u16> {
        self.0.port.or(match self.0.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        })
    }

    /// As written; empty when the URL has none.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// After `?`, without it.
    pub fn query(&self) -> Option<&str> {
        self.0.query.as_deref()
    }

    /// After `#`, without it.
    pub fn fragment(&self) -> Option<&str> {
        self.0.fragment.as_deref()
    }

    /// What an HTTP request line names: the path (`/` when empty) and the query.
    pub fn request_target(&self) -> String {
        let path = if self.0.path.is_empty() {
            "/"
        } else {
            &self.0.path
        };
        match &self.0.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }

    /// Scheme, host and port only, for messages: services such as Slack put the secret in the
    /// path, and userinfo is a password.
    pub fn without_secrets(&self) -> String {
        let port = self.0.port.map(|p| format!(":{p}")).unwrap_or_default();
        let more = if self.request_target() == "/" && self.0.fragment.is_none() {
            self.0.path.as_str()
        } else {
            "/…"
        };
        format!("{}://{}{port}{more}", self.0.scheme, self.0.host)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

// By hand, like `RoutingKey`'s: a URL printed with `{:?}` shows no path, query or password.
impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Url").field(&self.without_secrets()).finish()
    }
}

impl std::str::FromStr for Url {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Url, UrlError> {
        Url::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_taken_apart() {
        let url = Url::parse("HTTPS://me:pw@Hooks.Example.com:8443/a/b?x=1&y=2#top").unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.userinfo(), Some("me:pw"));
        assert_eq!(url.host(), &Host::Name("hooks.example.com".into()));
        assert_eq!(url.port(), Some(8443));
        assert_eq!(url.path(), "/a/b");
        assert_eq!(url.query(), Some("x=1&y=2"));
        assert_eq!(url.fragment(), Some("top"));
        assert_eq!(url.request_target(), "/a/b?x=1&y=2");
        assert_eq!(url.without_secrets(), "https://hooks.example.com:8443/…");
        assert_eq!(
            url.as_str(),
            "HTTPS://me:pw@Hooks.Example.com:8443/a/b?x=1&y=2#top"
        );
    }

    #[test]
    fn an_ipv6_literal_host_is_accepted() {
        // Regression: `https://[::1]/hook` was rejected, its `1]` read as a port.
        let url = Url::parse("https://[::1]/hook").unwrap();
        assert_eq!(url.host(), &Host::Ipv6(Ipv6Addr::LOCALHOST));
        assert_eq!(url.port(), None);
        assert_eq!(url.port_or_default(), Some(443));
        assert_eq!(url.path(), "/hook");
        let url = Url::parse("http://[2001:db8::1]:8080").unwrap();
        assert_eq!(url.host().to_string(), "[2001:db8::1]");
        assert_eq!(url.port(), Some(8080));
        assert_eq!(url.request_target(), "/");
    }

    #[test]
    fn a_query_right_after_the_host_is_not_part_of_the_host() {
        // Regression: `https://host?x=1` was read as host `host?x=1`.
        let url = Url::parse("https://host?x=1").unwrap();
        assert_eq!(url.host(), &Host::Name("host".into()));
        assert_eq!(url.query(), Some("x=1"));
        assert_eq!(url.path(), "");
        assert_eq!(url.request_target(), "/?x=1");
        let url = Url::parse("http://host:81#frag").unwrap();
        assert_eq!(url.port(), Some(81));
        assert_eq!(url.fragment(), Some("frag"));
    }

    #[test]
    fn ipv4_hosts_are_addresses() {
        let url = Url::parse("http://127.0.0.1:9000/hook").unwrap();
        assert_eq!(url.host(), &Host::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(url.without_secrets(), "http://127.0.0.1:9000/…");
        assert_eq!(
            Url::parse("http://relay:8099/").unwrap().without_secrets(),
            "http://relay:8099/"
        );
    }

    #[test]
    fn mistakes_point_at_the_offending_part() {
        let err = |text: &str| Url::parse(text).unwrap_err();
        let e = err("hooks.example.com/x");
        assert!(e.message.contains("no scheme"), "{e}");
        let e = err("https://[::1/hook");
        assert!(e.message.contains("closing `]`"), "{e}");
        let e = err("https://[::g]/hook");
        assert_eq!(e.message, "`::g` is not an IPv6 address");
        assert_eq!(e.range, 8..13);
        let e = err("https://host:99999/x");
        assert_eq!(e.message, "`99999` is not a port number");
        assert_eq!(e.range, 12..18);
        let e = err("https://ho st/");
        assert_eq!(e.range, 10..11);
        let e = err("https://ho^st/");
        assert_eq!(e.range, 10..11);
        assert!(err("https:///path").message.contains("no host"));
        assert!(err("https://:80/").message.contains("no host"));
        assert!(err("https://[::1]x/").message.contains("unexpected `x`"));
        assert!(err("1http://x").message.contains("not a URL scheme"));
    }
}
