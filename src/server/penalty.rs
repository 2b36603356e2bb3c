//! Penalties per source address, after OpenSSH 9.8's `PerSourcePenalties`.
//!
//! Every key exchange costs the bastion real CPU (a Diffie-Hellman exponentiation, a host key
//! signature) before it knows who is on the other end, so a single address can keep it busy by
//! opening connections and dropping them (the DHEat class of attack), or spray logins. Each
//! connection that ends without logging in adds time to its source's penalty; time counts down
//! continuously, and once a source has accumulated `min`, its new connections are refused until
//! the penalty has run out. A slow trickle of failures never blocks anyone; a burst does.
//! The `noauth` share is charged as soon as a connection starts its key exchange and refunded
//! when it logs in, so parallel connections count while they are still open; successful logins
//! add nothing, so a burst of real logins from one NAT address never throttles itself.
//!
//! IPv4 sources are tracked per address, IPv6 sources per /64 (what one host usually holds).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::PenaltiesConfig;

/// The line a refused client reads instead of the SSH banner, as OpenSSH sends it.
pub const REFUSAL_LINE: &[u8] = b"Not allowed at this time\r\n";

/// How a connection ended, as far as penalties are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The user logged in: never penalised.
    LoggedIn,
    /// A login was tried and failed.
    LoginFailed,
    /// The connection used up its login grace time.
    GraceExceeded,
    /// The connection ended without any login attempt (a scan, a key exchange flood).
    NoLogin,
    /// The bastion closed it for its own reasons (shutting down): never penalised.
    ClosedByBastion,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ending::LoggedIn => "logged in",
            Ending::LoginFailed => "failed login",
            Ending::GraceExceeded => "login grace time exceeded",
            Ending::NoLogin => "no login attempt",
            Ending::ClosedByBastion => "closed by the bastion",
        })
    }
}

/// The answer for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it.
    Admit,
    /// Refuse it: its source is penalised for this much longer.
    Refuse(Duration),
}

/// A penalty that has just started to be enforced, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activated {
    /// The source block (an IPv4 address or an IPv6 /64).
    pub source: IpAddr,
    /// How long its connections will be refused.
    pub refused_for: Duration,
}

/// The table was full when a new source needed an entry, so that source went unpenalised.
/// Reported at most once per [`OVERFLOW_REPORT_INTERVAL`], so that a flood cannot flood the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// How often a full table is reported.
pub const OVERFLOW_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// An IP network such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The address part is not an IP address.
    #[error("not an IP address or network such as 10.0.0.0/8")]
    Address,
    /// The prefix length is not a number within the address family's bits.
    #[error("the prefix length must be 0-32 for IPv4 and 0-128 for IPv6")]
    Prefix,
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Network, NetworkError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| NetworkError::Address)?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or(NetworkError::Prefix)?,
        };
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net) as u128, 32, self.prefix)
                    == masked(u32::from(ip) as u128, 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix)
                    == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(value: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        value >> (bits - prefix)
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener) count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The block a source address is tracked under: the address for IPv4, its /64 for IPv6.
pub fn source_block(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the accumulated penalty runs out.
    until: Instant,
    /// Whether it reached `min` and its connections are being refused.
    enforced: bool,
}

/// The penalty table shared by every connection.
pub struct Penalties {
    config: PenaltiesConfig,
    table: Mutex<HashMap<IpAddr, Entry>>,
    overflow_reported: Mutex<Option<Instant>>,
}

impl Penalties {
    /// An empty table under `config`.
    pub fn new(config: PenaltiesConfig) -> Penalties {
        Penalties {
            config,
            table: Mutex::new(HashMap::new()),
            overflow_reported: Mutex::new(None),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        !self.config.enabled || self.config.exempt.iter().any(|n| n.contains(ip))
    }

    /// Whether a new connection from `ip` may be served at `now`.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        if self.exempt(ip) {
            return Admission::Admit;
        }
        let block = source_block(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&block).copied() {
            Some(entry) if entry.until <= now => {
                table.remove(&block);
                Admission::Admit
            }
            Some(entry) if entry.enforced => Admission::Refuse(entry.until - now),
            _ => Admission::Admit,
        }
    }

    /// Charges `[penalties] noauth` for a connection from `ip` that is starting its key
    /// exchange: a flood of parallel connections trips the penalty while they are still open,
    /// not only once they close. [`Penalties::logged_in`] refunds it. Returns the penalty when
    /// this made it enforced, or the overflow when the table was full (see [`Penalties::ended`]).
    pub fn admitted(&self, ip: IpAddr, now: Instant) -> Result<Option<Activated>, Overflow> {
        self.add(ip, self.config.noauth, now)
    }

    /// Refunds the charge made by [`Penalties::admitted`]: the user logged in, so the connection
    /// was not an attack. A burst of real logins therefore never adds up to a penalty.
    pub fn logged_in(&self, ip: IpAddr, now: Instant) {
        if self.exempt(ip) {
            return;
        }
        let block = source_block(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = table.get_mut(&block) {
            let left = entry.until.saturating_duration_since(now);
            match left.checked_sub(self.config.noauth) {
                Some(rest) if !rest.is_zero() => entry.until = now + rest,
                _ => {
                    table.remove(&block);
                }
            }
        }
    }

    /// Adds the rest of the penalty for a connection from `ip` that ended as `ending`, on top of
    /// the `noauth` charged at admission (a bastion-side close is refunded like a login). Returns
    /// the penalty when this made it enforced (to be logged once), or the overflow when the table
    /// was full (to be logged; at most once per [`OVERFLOW_REPORT_INTERVAL`]).
    pub fn ended(
        &self,
        ip: IpAddr,
        ending: Ending,
        now: Instant,
    ) -> Result<Option<Activated>, Overflow> {
        let noauth = self.config.noauth;
        let add = match ending {
            Ending::LoggedIn | Ending::NoLogin => return Ok(None),
            Ending::ClosedByBastion => {
                self.logged_in(ip, now);
                return Ok(None);
            }
            Ending::LoginFailed => self.config.authfail.saturating_sub(noauth),
            Ending::GraceExceeded => self.config.grace_exceeded.saturating_sub(noauth),
        };
        self.add(ip, add, now)
    }

    /// Whether `ip` is never penalised (penalties off, or an exempt network).
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt(ip)
    }

    fn add(&self, ip: IpAddr, add: Duration, now: Instant) -> Result<Option<Activated>, Overflow> {
        if add.is_zero() || self.exempt(ip) {
            return Ok(None);
        }
        let block = source_block(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&block) && table.len() >= self.config.max_sources {
            table.retain(|_, e| e.until > now);
            if table.len() >= self.config.max_sources {
                drop(table);
                let mut reported = self
                    .overflow_reported
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if reported.is_some_and(|at| now.duration_since(at) < OVERFLOW_REPORT_INTERVAL) {
                    return Ok(None);
                }
                *reported = Some(now);
                return Err(Overflow);
            }
        }
        let entry = table.entry(block).or_insert(Entry {
            until: now,
            enforced: false,
        });
        if entry.until <= now {
            *entry = Entry {
                until: now,
                enforced: false,
            };
        }
        let left = (entry.until - now + add).min(self.config.max);
        entry.until = now + left;
        if !entry.enforced && left >= self.config.min {
            entry.enforced = true;
            return Ok(Some(Activated {
                source: block,
                refused_for: left,
            }));
        }
        Ok(None)
    }

    /// Source blocks tracked now (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PenaltiesConfig {
        PenaltiesConfig {
            enabled: true,
            noauth: Duration::from_secs(1),
            authfail: Duration::from_secs(5),
            grace_exceeded: Duration::from_secs(10),
            min: Duration::from_secs(15),
            max: Duration::from_secs(600),
            max_sources: 4,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
            max_startups: 10,
        }
    }

    /// A whole connection: admitted, logged in or not, ended as `ending`.
    fn record(
        p: &Penalties,
        a: IpAddr,
        ending: Ending,
        now: Instant,
    ) -> Result<Option<Activated>, Overflow> {
        let first = p.admitted(a, now);
        if ending == Ending::LoggedIn {
            p.logged_in(a, now);
        }
        let second = p.ended(a, ending, now);
        match (first, second) {
            (Err(o), _) => Err(o),
            (Ok(Some(act)), _) => Ok(Some(act)),
            (Ok(None), r) => r,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_of_unauthenticated_connections_blocks_the_source_until_it_runs_out() {
        let p = Penalties::new(config());
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        let mut activated = None;
        for i in 0..15 {
            assert_eq!(p.admit(a, t0), Admission::Admit, "connection {i}");
            if let Some(act) = record(&p, a, Ending::NoLogin, t0).unwrap() {
                activated = Some((i, act));
            }
        }
        let (at, act) = activated.expect("the 15th penalty second enforces it");
        assert_eq!(at, 14);
        assert_eq!(act.refused_for, Duration::from_secs(15));
        assert_eq!(p.admit(a, t0), Admission::Refuse(Duration::from_secs(15)));
        // Other sources are unaffected.
        assert_eq!(p.admit(ip("192.0.2.8"), t0), Admission::Admit);
        let later = t0 + Duration::from_secs(15);
        assert_eq!(p.admit(a, later), Admission::Admit);
        assert_eq!(p.tracked(), 0, "an expired entry is dropped");
    }

    #[test]
    fn a_slow_trickle_and_successful_logins_never_block() {
        let p = Penalties::new(config());
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(1500 * i);
            assert_eq!(p.admit(a, now), Admission::Admit);
            record(&p, a, Ending::NoLogin, now).unwrap();
        }
        let end = t0 + Duration::from_millis(1500 * 1000);
        for _ in 0..10_000 {
            assert_eq!(record(&p, a, Ending::LoggedIn, end).unwrap(), None);
            assert_eq!(record(&p, a, Ending::ClosedByBastion, end).unwrap(), None);
        }
        assert_eq!(p.admit(a, end), Admission::Admit);
    }

    #[test]
    fn failed_logins_weigh_more_and_the_penalty_is_capped() {
        let p = Penalties::new(config());
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..2 {
            assert!(record(&p, a, Ending::LoginFailed, t0).unwrap().is_none());
        }
        assert!(record(&p, a, Ending::LoginFailed, t0).unwrap().is_some());
        for _ in 0..1000 {
            record(&p, a, Ending::GraceExceeded, t0).unwrap();
        }
        assert_eq!(p.admit(a, t0), Admission::Refuse(Duration::from_secs(600)));
    }

    #[test]
    fn exempt_networks_disabled_tables_and_ipv6_blocks() {
        let p = Penalties::new(config());
        let t0 = Instant::now();
        for _ in 0..100 {
            record(&p, ip("10.9.3.4"), Ending::LoginFailed, t0).unwrap();
            record(&p, ip("2001:db8::1"), Ending::LoginFailed, t0).unwrap();
        }
        assert_eq!(p.admit(ip("10.9.3.4"), t0), Admission::Admit);
        // The whole /64 is one source; the next /64 is another.
        assert!(matches!(
            p.admit(ip("2001:db8::ffff:1"), t0),
            Admission::Refuse(_)
        ));
        assert_eq!(p.admit(ip("2001:db8:0:1::1"), t0), Admission::Admit);
        // A mapped IPv4 address is the IPv4 address.
        for _ in 0..3 {
            record(&p, ip("::ffff:192.0.2.9"), Ending::LoginFailed, t0).unwrap();
        }
        assert!(matches!(p.admit(ip("192.0.2.9"), t0), Admission::Refuse(_)));

        let off = Penalties::new(PenaltiesConfig {
            enabled: false,
            ..config()
        });
        for _ in 0..100 {
            record(&off, ip("192.0.2.7"), Ending::LoginFailed, t0).unwrap();
        }
        assert_eq!(off.admit(ip("192.0.2.7"), t0), Admission::Admit);
    }

    #[test]
    fn a_full_table_tracks_no_new_sources_until_entries_expire() {
        let p = Penalties::new(config());
        let t0 = Instant::now();
        for i in 0..4 {
            record(&p, ip(&format!("192.0.2.{i}")), Ending::NoLogin, t0).unwrap();
        }
        assert_eq!(
            record(&p, ip("192.0.2.200"), Ending::NoLogin, t0),
            Err(Overflow)
        );
        // Reported once, not once per connection.
        assert_eq!(record(&p, ip("192.0.2.201"), Ending::NoLogin, t0), Ok(None));
        // Known sources are still penalised.
        assert!(record(&p, ip("192.0.2.1"), Ending::NoLogin, t0).is_ok());
        let later = t0 + Duration::from_secs(3);
        assert!(record(&p, ip("192.0.2.200"), Ending::NoLogin, later).is_ok());
    }

    #[test]
    fn networks_parse_and_match() {
        let n: Network = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains(ip("192.0.2.255")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(!n.contains(ip("2001:db8::1")));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let host: Network = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "2001:db8::/129",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }
}
