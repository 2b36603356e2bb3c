//! Forwarding destinations: a role's `forward = ["db-replica-01:5432", "127.0.0.1:9090"]`, and
//! whether what a client asks for (`ssh -L 5432:db-replica-01:5432`, `ssh -W host:port`) is one
//! of them.
//!
//! An entry names exactly one host and one port: a policy target (whose address is used), a DNS
//! name with a dot, or an IP address (`[…]` around IPv6). There are no wildcards and no port
//! ranges. A request matches an entry only as the entry names it: the same target or DNS name
//! (case-insensitively), or the same IP address, and the same port.

use std::fmt;
use std::net::IpAddr;

/// The host part of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address.
    Ip(IpAddr),
    /// A name: a policy target when the policy has one by that name, else a DNS name.
    Name(String),
}

/// One destination: a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Where.
    pub host: Host,
    /// Which TCP port.
    pub port: u16,
}

/// Why a `forward` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// No `:PORT`.
    #[error("forward destination {0:?} needs HOST:PORT")]
    NoPort(String),
    /// The port is not 1–65535.
    #[error("forward destination {0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    /// `*`, `?`, ranges and the like: every destination is named.
    #[error("forward destination {0:?}: wildcards and ranges are not allowed; list each HOST:PORT")]
    Wildcard(String),
    /// Not a host name or IP address.
    #[error("forward destination {0:?}: {1:?} is not a host name, target name or IP address")]
    BadHost(String, String),
}

impl Destination {
    /// Reads an entry of a role's `forward` list.
    pub fn parse(entry: &str) -> Result<Destination, DestinationError> {
        let owned = || entry.to_owned();
        if entry.contains(['*', '?', ',', ' ', '/']) {
            return Err(DestinationError::Wildcard(owned()));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| DestinationError::NoPort(owned()))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| DestinationError::BadHost(owned(), ip.to_owned()))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| DestinationError::NoPort(owned()))?;
            if host.contains(':') {
                // An IPv6 address without brackets cannot be told apart from its port.
                return Err(DestinationError::BadHost(owned(), host.to_owned()));
            }
            (
                Host::parse(host)
                    .ok_or_else(|| DestinationError::BadHost(owned(), host.to_owned()))?,
                port,
            )
        };
        if port.contains('-') {
            return Err(DestinationError::Wildcard(owned()));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('+') => p,
            _ => return Err(DestinationError::BadPort(owned())),
        };
        Ok(Destination { host, port })
    }

    /// What a client asked for (`host_to_connect`, `port_to_connect`), if it can be a
    /// destination at all.
    pub fn requested(host: &str, port: u32) -> Option<Destination> {
        let port = u16::try_from(port).ok().filter(|&p| p > 0)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Some(Destination {
            host: Host::parse(host)?,
            port,
        })
    }
}

impl Host {
    /// An IP address, or a host name made of letters, digits, `-`, `_` and dots (at most
    /// 253 bytes), lowercased.
    fn parse(text: &str) -> Option<Host> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        let valid = !text.is_empty()
            && text.len() <= 253
            && !text.starts_with(['.', '-'])
            && !text.ends_with('.')
            && !text.contains("..")
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        valid.then(|| Host::Name(text.to_ascii_lowercase()))
    }

    /// Whether a name without a dot must be a policy target (`localhost` aside): a bare name
    /// that is not one is most likely a typing error, and the search domain of the bastion's
    /// resolver is not something a policy should depend on.
    pub fn must_be_target(&self) -> bool {
        matches!(self, Host::Name(n) if !n.contains('.') && n != "localhost")
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Destination {
        Destination::parse(s).unwrap()
    }

    #[test]
    fn entries_name_one_host_and_one_port() {
        assert_eq!(
            parse("db-replica-01:5432"),
            Destination {
                host: Host::Name("db-replica-01".into()),
                port: 5432
            }
        );
        assert_eq!(
            parse("127.0.0.1:9090").host,
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(parse("[::1]:9090").host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            parse("DB.Example.org:5432").host,
            Host::Name("db.example.org".into())
        );
        assert_eq!(parse("[::1]:9090").to_string(), "[::1]:9090");
        assert!(parse("db-replica-01:5432").host.must_be_target());
        assert!(!parse("db.internal:5432").host.must_be_target());
        assert!(!parse("localhost:5432").host.must_be_target());
        assert!(!parse("10.0.0.1:5432").host.must_be_target());
    }

    #[test]
    fn wildcards_ranges_and_malformed_entries_are_refused() {
        use DestinationError::*;
        let err = |s: &str| Destination::parse(s).unwrap_err();
        assert!(matches!(err("db-*:5432"), Wildcard(_)));
        assert!(matches!(err("10.0.0.0/8:5432"), Wildcard(_)));
        assert!(matches!(err("db.internal:*"), Wildcard(_)));
        assert!(matches!(err("db.internal:5432-5440"), Wildcard(_)));
        assert!(matches!(err("db.internal"), NoPort(_)));
        assert!(matches!(err("db.internal:0"), BadPort(_)));
        assert!(matches!(err("db.internal:65536"), BadPort(_)));
        assert!(matches!(err("db.internal:+22"), BadPort(_)));
        assert!(matches!(err("db.internal:"), BadPort(_)));
        assert!(matches!(err("::1:22"), BadHost(..)));
        assert!(matches!(err("[::1]22"), NoPort(_)));
        assert!(matches!(err("[nope]:22"), BadHost(..)));
        assert!(matches!(err(":22"), BadHost(..)));
        assert!(matches!(err("a..b:22"), BadHost(..)));
        assert!(matches!(err("db;rm:22"), BadHost(..)));
    }

    #[test]
    fn a_request_is_read_the_way_an_entry_is() {
        let want = parse("db.internal:5432");
        assert_eq!(Destination::requested("DB.internal", 5432), Some(want));
        assert_eq!(
            Destination::requested("::1", 22).unwrap(),
            parse("[::1]:22")
        );
        assert_eq!(
            Destination::requested("[::1]", 22).unwrap(),
            parse("[::1]:22")
        );
        assert_eq!(
            Destination::requested("0:0::1", 22).unwrap(),
            parse("[::1]:22"),
            "the same address however it is written"
        );
        assert_eq!(Destination::requested("db", 0), None);
        assert_eq!(Destination::requested("db", 70000), None);
        assert_eq!(Destination::requested("db;x", 22), None);
        assert_eq!(Destination::requested("", 22), None);
    }
}
