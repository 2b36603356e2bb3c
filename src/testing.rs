//! Fixtures for unit tests: a small policy with users in several groups and roles with
//! different approval rules.

use std::path::Path;

use crate::policy::{Policy, load_sources};

/// A distinct, well-formed Ed25519 public key line for test user `n`.
pub fn test_key(n: u8) -> String {
    let mut blob = vec![0, 0, 0, 11];
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&[0, 0, 0, 32]);
    blob.extend_from_slice(&[n; 32]);
    format!("ssh-ed25519 {}", base64(&blob))
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// alice (sre), bob (leads), carol (leads, sre), eve (qa); targets web-01 and db-01; roles
/// web-ops (1 approval), db-ops (2 approvals), self (self-service) and web-read (restricted).
pub fn sample_policy() -> Policy {
    let text = format!(
        r#"
[[user]]
name = "alice"
keys = ["{}"]
groups = ["sre"]
[[user]]
name = "bob"
keys = ["{}"]
groups = ["leads"]
[[user]]
name = "carol"
keys = ["{}"]
groups = ["leads", "sre"]
[[user]]
name = "eve"
keys = ["{}"]
groups = ["qa"]
[[target]]
name = "web-01"
address = "127.0.0.1"
host_keys = ["{}"]
[[target]]
name = "db-01"
address = "127.0.0.1"
host_keys = ["{}"]
[[role]]
name = "web-ops"
members = ["sre"]
targets = ["web-*"]
login = "ops"
max_duration = "4h"
approvals = 1
approvers = ["leads"]
shell = "full"
[[role]]
name = "db-ops"
members = ["sre"]
targets = ["db-01"]
login = "ops"
max_duration = "1h"
approvals = 2
approvers = ["leads"]
shell = "full"
[[role]]
name = "web-read"
members = ["sre"]
targets = ["web-01"]
login = "ops"
approvals = 0
shell = "none"
commands = ["systemctl status *", "journalctl -u nginx *"]
[[role]]
name = "self"
members = ["sre"]
targets = ["web-01"]
login = "ops"
approvals = 0
shell = "full"
"#,
        test_key(1),
        test_key(2),
        test_key(3),
        test_key(4),
        test_key(5),
        test_key(6)
    );
    load_sources(&[(Path::new("p.toml"), &text)]).expect("the sample policy loads")
}
