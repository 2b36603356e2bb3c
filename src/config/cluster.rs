//! `[cluster]`: this node's name and how it behaves among several nodes sharing one store.
//!
//! A single node needs none of it: it is a cluster of one, named after its host.

use std::time::Duration;

use serde::Deserialize;

use crate::duration;

/// Longest node name: it goes into every session row, audit line and alert.
const MAX_NAME_LEN: usize = 64;

/// This node among others (`[cluster]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique per node; names the node in sessions, audit lines and alerts.
    pub node_name: String,
    /// Without a confirmed view of the grants for this long (the store cannot be read), the
    /// node closes its running sessions: it could no longer see a revocation.
    pub lost_grace: Duration,
    /// How often the node records its heartbeat.
    pub heartbeat: Duration,
    /// A node silent for this long is declared gone and its open sessions are closed in the
    /// index as `node lost`.
    pub gone_after: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node_name: Option<String>,
    lost_grace: Option<String>,
    heartbeat: Option<String>,
    gone_after: Option<String>,
}

/// Checks `[cluster]` and fills in its defaults.
pub(super) fn resolve(raw: RawCluster) -> Result<ClusterConfig, String> {
    let dur = |key: &str, value: Option<String>, default: &str| {
        duration::parse(value.as_deref().unwrap_or(default))
            .map_err(|e| format!("cluster.{key}: {e}"))
    };
    let node_name = match raw.node_name {
        Some(name) => name,
        None => host_name()
            .ok_or("cluster.node_name: the host name cannot be read; set node_name".to_owned())?,
    };
    check_node_name(&node_name)?;
    let lost_grace = dur("lost_grace", raw.lost_grace, "10s")?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&lost_grace) {
        return Err("cluster.lost_grace: must be between 1s and 1h".into());
    }
    let heartbeat = dur("heartbeat", raw.heartbeat, "2s")?;
    if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&heartbeat) {
        return Err("cluster.heartbeat: must be between 1s and 1m".into());
    }
    let gone_after = dur("gone_after", raw.gone_after, "30s")?;
    if gone_after < heartbeat * 3 {
        return Err(format!(
            "cluster.gone_after: must be at least three heartbeats ({})",
            duration::format(heartbeat * 3)
        ));
    }
    if gone_after < lost_grace {
        // A node declared gone must already have closed its own sessions.
        return Err("cluster.gone_after: must be at least lost_grace".into());
    }
    Ok(ClusterConfig {
        node_name,
        lost_grace,
        heartbeat,
        gone_after,
    })
}

/// A node name is short printable ASCII without spaces: letters, digits, `.`, `_`, `-`.
fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster.node_name: {name:?} must be 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-'"
        ))
    }
}

/// This machine's host name, if it can be read and is printable ASCII.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = &buf[..end];
    (rc == 0 && !name.is_empty() && name.iter().all(|b| (33..=126).contains(b)))
        .then(|| String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: Option<&str>) -> RawCluster {
        RawCluster {
            node_name: name.map(str::to_owned),
            ..RawCluster::default()
        }
    }

    #[test]
    fn defaults_name_the_host() {
        let c = resolve(raw(None)).unwrap();
        assert_eq!(Some(c.node_name), host_name());
        assert_eq!(c.lost_grace, Duration::from_secs(10));
    }

    #[test]
    fn node_names_are_plain() {
        assert!(resolve(raw(Some("bastion-a.eu_1"))).is_ok());
        for bad in ["", "a b", "a\nb", "ü", &"x".repeat(65)] {
            assert!(resolve(raw(Some(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn silly_timings_are_refused() {
        let r = |grace: &str, beat: &str, gone: &str| {
            resolve(RawCluster {
                node_name: Some("a".into()),
                lost_grace: Some(grace.into()),
                heartbeat: Some(beat.into()),
                gone_after: Some(gone.into()),
            })
        };
        assert!(r("10s", "2s", "30s").is_ok());
        assert!(r("0s", "2s", "30s").is_err());
        assert!(
            r("10s", "2s", "5s").is_err(),
            "gone before three heartbeats"
        );
        assert!(r("10s", "0s", "30s").is_err());
    }
}
