//! Spin's `allowed_outbound_hosts` entries: `scheme://host[:port]`, where
//! each part may be `*`, the host may be `*.domain` (any subdomain), the
//! port a range `a..b` (end excluded, as in Spin), and a missing port is
//! the scheme's well-known one.
//! `*://*:*` allows everything. Outbound HTTP, PostgreSQL and Redis all
//! check their address against the same list, as in Spin.

#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    scheme: Option<String>,
    host: Host,
    ports: Ports,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    Any,
    /// `*.example.com`: stored as `.example.com`.
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Ports {
    Any,
    Range(u16, u16),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("allowed_outbound_hosts entry {entry:?}: {message}")]
pub struct AllowedHostError {
    pub entry: String,
    pub message: String,
}

/// The port a scheme means when none is given.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" | "postgresql" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "rediss" => 6380,
        "mqtt" => 1883,
        "mqtts" => 8883,
        _ => return None,
    })
}

impl AllowedHosts {
    pub fn none() -> Self {
        AllowedHosts {
            entries: Vec::new(),
        }
    }

    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        let entries = entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Whether a connection to `host:port` over `scheme` is allowed.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && match &e.host {
                    Host::Any => true,
                    Host::Exact(h) => *h == host,
                    Host::Subdomains(suffix) => host.ends_with(suffix.as_str()),
                }
                && match e.ports {
                    Ports::Any => true,
                    Ports::Range(lo, hi) => (lo..=hi).contains(&port),
                }
        })
    }

    /// Whether `url` (`scheme://host[:port]/...`) is allowed.
    pub fn allows_url(&self, url: &str) -> bool {
        let Some((scheme, rest)) = url.split_once("://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = split_host_port(authority);
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(p) => p,
                Err(_) => return false,
            },
            None => match well_known_port(scheme) {
                Some(p) => p,
                None => return false,
            },
        };
        self.allows(scheme, host, port)
    }
}

/// `host:port`, `[v6]:port`, or a bare host.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn parse_entry(text: &str) -> Result<Entry, AllowedHostError> {
    let fail = |message: &str| AllowedHostError {
        entry: text.to_owned(),
        message: message.to_owned(),
    };
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| fail("must name a scheme, like https://example.com or *://host:port"))?;
    if rest.contains('/') && !rest.ends_with('/') {
        return Err(fail("must not have a path"));
    }
    let rest = rest.trim_end_matches('/');
    if scheme.is_empty() || rest.is_empty() {
        return Err(fail("must be scheme://host[:port]"));
    }
    let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
    let (host, port) = split_host_port(rest);
    let host = match host {
        "*" => Host::Any,
        "self" | "self.alt" => {
            return Err(fail(
                "`self` (requests to the app itself) is not supported by SelfDB",
            ))
        }
        h if h.starts_with("*.") => Host::Subdomains(h[1..].to_ascii_lowercase()),
        h if h.contains('*') => return Err(fail("a wildcard host is * or *.domain")),
        h => Host::Exact(h.to_ascii_lowercase()),
    };
    let ports = match port {
        Some("*") => Ports::Any,
        Some(p) => match p.split_once("..") {
            Some((lo, hi)) => {
                let lo: u16 = lo.parse().map_err(|_| fail("invalid port range"))?;
                let hi: u16 = hi.parse().map_err(|_| fail("invalid port range"))?;
                if lo >= hi {
                    return Err(fail("invalid port range"));
                }
                Ports::Range(lo, hi - 1)
            }
            None => {
                let p = p.parse().map_err(|_| fail("invalid port"))?;
                Ports::Range(p, p)
            }
        },
        None => match scheme.as_deref().and_then(well_known_port) {
            Some(p) => Ports::Range(p, p),
            None => {
                return Err(fail(
                    "needs a port: this scheme has no well-known one (write :* for any)",
                ))
            }
        },
    };
    Ok(Entry {
        scheme,
        host,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries).unwrap()
    }

    #[test]
    fn entries_match_scheme_host_and_port() {
        let h = hosts(&[
            "https://example.com",
            "postgres://db:5433",
            "*://*.internal:*",
        ]);
        assert!(h.allows("https", "example.com", 443));
        assert!(h.allows("https", "EXAMPLE.com", 443));
        assert!(!h.allows("http", "example.com", 80));
        assert!(!h.allows("https", "example.com", 8443));
        assert!(!h.allows("https", "sub.example.com", 443));
        assert!(h.allows("postgres", "db", 5433));
        assert!(!h.allows("postgres", "db", 5432));
        assert!(h.allows("redis", "cache.internal", 1));
        assert!(!h.allows("redis", "internal", 1));
        assert!(h.allows_url("https://example.com/path?q"));
        assert!(h.allows_url("postgres://user:pw@db:5433/app"));
        assert!(!h.allows_url("postgres://user:pw@db/app"));
        assert!(!h.allows_url("nonsense"));
    }

    #[test]
    fn everything_ranges_and_ipv6() {
        let all = hosts(&["*://*:*"]);
        assert!(all.allows("anything", "x", 1));
        let ranges = hosts(&["http://127.0.0.1:8000..8010", "http://[::1]:80"]);
        assert!(ranges.allows_url("http://127.0.0.1:8005/"));
        assert!(!ranges.allows_url("http://127.0.0.1:8010/"));
        assert!(ranges.allows_url("http://[::1]/"));
        assert!(!AllowedHosts::none().allows("https", "example.com", 443));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "example.com",
            "https://example.com/path",
            "*://example.com",
            "https://ex*ample.com",
            "https://example.com:99999",
            "https://self",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
