//! The check every request with a path goes through: normalise it, reach its target, resolve
//! it there, and hold it against the role's rules in force now; a refusal is recorded and
//! answered, on the client's stderr too.

use std::sync::Arc;

use russh_sftp::protocol::{Lstat, Packet, RealPath, StatusCode};

use super::link::Link;
use super::path::{self, Location, PathError, TargetPath};
use super::proxy::{Fault, FileSession};
use super::relay::failure;
use super::rules::Access;
use super::transcript::{Entry, Outcome};

/// A path checked and resolved on its target.
pub(super) struct Checked {
    /// The target it is on.
    pub(super) link: Arc<Link>,
    /// The path on the target, resolved there.
    pub(super) path: String,
}

/// What a check answered instead of a path: the status to send.
type Answer = (StatusCode, String);

impl FileSession {
    /// Normalises `raw`, reaches its target, resolves it there and checks `access`; `None` when
    /// the client has been answered already (refused, not found, or the root).
    pub(super) async fn checked(
        &mut self,
        id: u32,
        op: &'static str,
        raw: &str,
        access: Access,
        follow: bool,
    ) -> Result<Option<Checked>, Fault> {
        let at = match path::locate(raw) {
            Ok(Location::Target(at)) => at,
            Ok(Location::Root) => {
                let why = "the root only lists the targets".to_owned();
                self.refuse_outside(id, op, "/", why);
                return Ok(None);
            }
            Err(e @ PathError::NotATarget(_)) => {
                self.out.status(id, StatusCode::NoSuchFile, e.to_string());
                return Ok(None);
            }
            Err(e) => {
                self.refuse_outside(id, op, raw, e.to_string());
                return Ok(None);
            }
        };
        let link = match self.link(&at).await {
            Ok(link) => link,
            Err((code, why)) => {
                self.out.status(id, code, why);
                return Ok(None);
            }
        };
        let resolved = match resolve(&link, &at.path, follow).await {
            Ok(resolved) => resolved,
            Err((code, why)) => {
                if access != Access::Stat {
                    let entry = Entry::new(op, &at.path, Outcome::Failed(why.clone()));
                    self.record(&link, entry).await?;
                }
                self.out.status(id, code, why);
                return Ok(None);
            }
        };
        let c = Checked {
            link,
            path: resolved,
        };
        if !self.allowed(&c.link, access, &c.path) {
            let why = denial(&at, &c, op, access);
            self.deny(id, &c.link, Entry::new(op, &c.path, Outcome::Denied(why)))
                .await?;
            return Ok(None);
        }
        Ok(Some(c))
    }

    /// Checks a second kind of access on a path already checked once; answers a refusal.
    pub(super) async fn deny_unless(
        &mut self,
        id: u32,
        c: &Checked,
        op: &'static str,
        access: Access,
    ) -> Result<bool, Fault> {
        if self.allowed(&c.link, access, &c.path) {
            return Ok(true);
        }
        let at = TargetPath {
            target: c.link.permit.target().name.clone(),
            role: None,
            path: c.path.clone(),
        };
        let why = denial(&at, c, op, access);
        self.deny(id, &c.link, Entry::new(op, &c.path, Outcome::Denied(why)))
            .await?;
        Ok(false)
    }

    /// Records a refusal and answers it, on the client's stderr too.
    pub(super) async fn deny(&mut self, id: u32, link: &Link, entry: Entry) -> Result<(), Fault> {
        let line = format!(
            "gatehouse: denied: {}",
            match &entry.outcome {
                Outcome::Denied(why) => why.clone(),
                other => other.text(),
            }
        );
        self.record(link, entry).await?;
        self.out.notice(format!("{line}\r\n"));
        self.out.status(id, StatusCode::PermissionDenied, line);
        Ok(())
    }

    /// Whether the role of `link`, as the policy in force has it now, allows `access` to `path`.
    pub(super) fn allowed(&self, link: &Link, access: Access, path: &str) -> bool {
        let policy = self.bastion.policy();
        policy
            .role(&link.permit.role().name)
            .and_then(|r| r.files.as_ref())
            .is_some_and(|rules| rules.allows(access, path))
    }

    /// Whether the role of `link` asks for file hashes now.
    pub(super) fn rules_hash(&self, link: &Link) -> bool {
        let policy = self.bastion.policy();
        policy
            .role(&link.permit.role().name)
            .and_then(|r| r.files.as_ref())
            .is_some_and(|rules| rules.hash)
    }
}

/// The words of a refusal by the rules.
fn denial(at: &TargetPath, c: &Checked, op: &str, access: Access) -> String {
    let target = &c.link.permit.target().name;
    let role = &c.link.permit.role().name;
    let mut why = format!(
        "{op} ({}) of {} on {target} is not allowed by role {role}",
        access.as_str(),
        c.path
    );
    if at.path != c.path {
        why.push_str(&format!(" ({} resolves to it on the target)", at.path));
    }
    why
}

/// Resolves `path` on the target: with `follow`, every symlink in it (the last segment may
/// not exist yet, for a file or directory about to be created); without, every symlink but the
/// last segment, so an operation on a link acts on the link itself.
async fn resolve(link: &Link, path: &str, follow: bool) -> Result<String, Answer> {
    let Some((parent, name)) = path::split_last(path) else {
        return realpath(link, "/").await;
    };
    if !follow {
        return Ok(path::join(&realpath(link, parent).await?, name));
    }
    match realpath(link, path).await {
        Err((StatusCode::NoSuchFile, why)) => {
            // A target whose realpath wants the last segment to exist: resolve the parent, and
            // make sure the last segment really is missing (not a link to somewhere missing,
            // which a create would follow).
            let candidate = path::join(&realpath(link, parent).await?, name);
            let probe = candidate.clone();
            match link
                .remote
                .ask(|rid| {
                    Packet::Lstat(Lstat {
                        id: rid,
                        path: probe,
                    })
                })
                .await
            {
                Ok(Packet::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(candidate),
                _ => Err((StatusCode::NoSuchFile, why)),
            }
        }
        other => other,
    }
}

/// The target's `realpath` of `path`, trusted only if it is absolute, normalised and UTF-8.
async fn realpath(link: &Link, path: &str) -> Result<String, Answer> {
    let asked = path.to_owned();
    match link
        .remote
        .ask(|rid| {
            Packet::RealPath(RealPath {
                id: rid,
                path: asked,
            })
        })
        .await
    {
        Ok(Packet::Name(name)) => match name.files.into_iter().next() {
            Some(f) if path::is_normal(&f.filename) && !f.filename.contains('\u{FFFD}') => {
                Ok(f.filename)
            }
            _ => Err((
                StatusCode::PermissionDenied,
                format!("gatehouse: denied: the target's name for {path} cannot be checked"),
            )),
        },
        other => Err(failure(other)),
    }
}
