//! The destinations no policy can open: the bastion's own listeners.
//!
//! A forward to the bastion's SSH port would let a user come back in through the front door
//! from inside (as the bastion's own address, past any source-address rule), and one to its
//! HTTP port would reach the console from the bastion itself. So an address whose port is one
//! the bastion listens on is refused when the address is this machine's: loopback, the
//! unspecified address (which connects locally), or any address assigned to one of its
//! interfaces, whatever address the listener itself is bound to.

use std::net::{IpAddr, SocketAddr};

/// The ports the bastion listens on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnListeners {
    ports: Vec<u16>,
}

impl OwnListeners {
    /// The listeners at `addresses` (the SSH listener, the HTTP listener if any).
    pub fn new(addresses: impl IntoIterator<Item = SocketAddr>) -> OwnListeners {
        let mut ports: Vec<u16> = addresses.into_iter().map(|a| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        OwnListeners { ports }
    }

    /// Whether a connection to `address` would reach one of the bastion's listeners.
    pub fn is_own(&self, address: SocketAddr) -> bool {
        self.ports.contains(&address.port()) && is_this_machine(address.ip())
    }
}

/// Whether `ip` is this machine: loopback, unspecified, or assigned to an interface here (an
/// address a socket can be bound to). An IPv4 address mapped into IPv6 is judged as IPv4.
pub fn is_this_machine(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    // Binding succeeds only for an address of this machine (port 0: nothing is taken).
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_bastions_ports_on_any_local_address_are_its_own() {
        let own = OwnListeners::new([addr("127.0.0.1:2222"), addr("0.0.0.0:8443")]);
        for hit in [
            "127.0.0.1:2222",
            "127.0.0.2:2222",
            "0.0.0.0:2222",
            "[::1]:2222",
            "[::]:8443",
            "[::ffff:127.0.0.1]:2222",
            "127.0.0.1:8443",
        ] {
            assert!(own.is_own(addr(hit)), "{hit}");
        }
        for miss in [
            "127.0.0.1:2223",
            "127.0.0.1:22",
            "192.0.2.7:2222",
            "[2001:db8::1]:8443",
        ] {
            assert!(!own.is_own(addr(miss)), "{miss}");
        }
    }

    #[test]
    fn an_address_of_this_machine_is_recognised() {
        assert!(is_this_machine("127.0.0.1".parse().unwrap()));
        assert!(is_this_machine("::".parse().unwrap()));
        // TEST-NET-1 is never assigned to an interface here.
        assert!(!is_this_machine("192.0.2.1".parse().unwrap()));
        // Whatever address this machine uses to reach the world is its own.
        if let Ok(probe) = std::net::UdpSocket::bind("0.0.0.0:0")
            && probe.connect("192.0.2.1:9").is_ok()
            && let Ok(local) = probe.local_addr()
            && !local.ip().is_unspecified()
        {
            assert!(is_this_machine(local.ip()), "{local}");
        }
    }
}
