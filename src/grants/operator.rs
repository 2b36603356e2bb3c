//! Who is at the `gatehouse` command line: the operating system says, never the environment.
//!
//! The operator is the account of the process's real uid, looked up in the passwd database.
//! `USER`, `SUDO_USER`, `LOGNAME` and flags play no part: anyone can set them. An account that
//! cannot be resolved is an error, not a guess. `[[operator]]` in the policy then says which
//! policy user (if any) that account acts as; see [`super::Actor::Operator`].

use std::ffi::CStr;

use super::Actor;
use crate::policy::Policy;

/// Why the operator's identity could not be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The passwd database has no entry for the uid.
    #[error(
        "uid {0} has no account in the passwd database; refusing to act for an unknown operator"
    )]
    NoAccount(u32),
    /// The lookup itself failed.
    #[error("looking up uid {uid} in the passwd database failed: {error}")]
    Lookup {
        /// The uid.
        uid: u32,
        /// What the system said.
        error: String,
    },
    /// The account name is not one a policy could map.
    #[error("the account name of uid {uid} ({name:?}) cannot be used as an operator name")]
    BadName {
        /// The uid.
        uid: u32,
        /// The name, lossily decoded.
        name: String,
    },
}

/// The account name of this process's real uid.
pub fn current_account() -> Result<String, IdentityError> {
    // SAFETY: getuid cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    account_of(uid)
}

/// The account name of `uid`, from the passwd database (files, LDAP, whatever NSS is set up
/// with).
pub fn account_of(uid: u32) -> Result<String, IdentityError> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `pwd` and `buf` outlive the call; getpwuid_r writes only within `buf.len()`
        // bytes of `buf`, and `found` is either null or points at `pwd`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(IdentityError::Lookup {
                uid,
                error: std::io::Error::from_raw_os_error(rc).to_string(),
            });
        }
        if found.is_null() || pwd.pw_name.is_null() {
            return Err(IdentityError::NoAccount(uid));
        }
        // SAFETY: pw_name points at a NUL-terminated string inside `buf`, which is alive.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return match name.to_str() {
            Ok(n) if crate::policy::valid_unix_account(n) => Ok(n.to_owned()),
            _ => Err(IdentityError::BadName {
                uid,
                name: name.to_string_lossy().into_owned(),
            }),
        };
    }
}

/// The actor for the Unix account `account` under `policy`: mapped to a policy user through
/// `[[operator]]`, or unmapped.
pub fn actor_for(policy: &Policy, account: &str) -> Actor {
    Actor::Operator {
        account: account.to_owned(),
        user: policy.operator(account).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root_and_an_unknown_uid_is_an_error() {
        assert_eq!(account_of(0).unwrap(), "root");
        assert_eq!(
            account_of(4_000_000_123),
            Err(IdentityError::NoAccount(4_000_000_123))
        );
    }
}
