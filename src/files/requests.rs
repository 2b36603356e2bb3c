//! Each SFTP request, checked and answered: the dispatch, and the requests that name a path.
//!
//! A request with a path goes through [`super::check`]: normalise it, reach the target it
//! names, resolve it there (`realpath`: every symlink followed, or all but the last for
//! operations on a link itself), check the role's rules, in force now, on the resolved path;
//! then the resolved path is sent on, never the client's text. Requests on handles are in
//! [`super::relay`]. Creating symlinks (or hard links) is refused, and no SFTP extension is
//! offered.

use std::sync::{Arc, Mutex};

use russh_sftp::protocol::{
    Attrs, Close, Fstat, Handle, Lstat, MkDir, Name, Open, OpenDir, OpenFlags, Packet, ReadDir,
    ReadLink, RealPath, Remove, Rename, RmDir, SetStat, Stat, StatusCode,
};

use super::check::Checked;
use super::handles::{Mode, Opened, Traffic};
use super::path::{self, Location};
use super::proxy::{Fault, FileSession, directory_attrs, version};
use super::relay::{failure, relay};
use super::rules::Access;
use super::transcript::{Entry, Outcome};

impl FileSession {
    /// Answers one decoded request.
    pub(super) async fn answer(&mut self, packet: Packet) -> Result<(), Fault> {
        match packet {
            Packet::Init(_) => self.out.reply(0, version()),
            Packet::RealPath(RealPath { id, path }) => self.realpath(id, &path),
            Packet::Stat(Stat { id, path }) => return self.stat(id, &path, true).await,
            Packet::Lstat(Lstat { id, path }) => return self.stat(id, &path, false).await,
            Packet::Open(open) => return self.open(open).await,
            Packet::OpenDir(OpenDir { id, path }) => return self.opendir(id, &path).await,
            Packet::Close(Close { id, handle }) => return self.close(id, &handle).await,
            Packet::Read(read) => self.read(read).await,
            Packet::Write(write) => self.write(write).await,
            Packet::ReadDir(ReadDir { id, handle }) => self.readdir(id, &handle).await,
            Packet::Fstat(Fstat { id, handle }) => self.fstat(id, &handle).await,
            Packet::FSetStat(set) => return self.fsetstat(set).await,
            Packet::SetStat(SetStat { id, path, attrs }) => {
                return self
                    .checked_change(id, "setstat", &path, true, move |id, path| {
                        Packet::SetStat(SetStat { id, path, attrs })
                    })
                    .await;
            }
            Packet::Remove(Remove { id, filename }) => {
                return self
                    .checked_change(id, "remove", &filename, false, |id, filename| {
                        Packet::Remove(Remove { id, filename })
                    })
                    .await;
            }
            Packet::MkDir(MkDir { id, path, attrs }) => {
                return self
                    .checked_change(id, "mkdir", &path, true, move |id, path| {
                        Packet::MkDir(MkDir { id, path, attrs })
                    })
                    .await;
            }
            Packet::RmDir(RmDir { id, path }) => {
                return self
                    .checked_change(id, "rmdir", &path, false, |id, path| {
                        Packet::RmDir(RmDir { id, path })
                    })
                    .await;
            }
            Packet::Rename(rename) => return self.rename(rename).await,
            Packet::ReadLink(ReadLink { id, path }) => {
                let Some(c) = self
                    .checked(id, "readlink", &path, Access::Read, false)
                    .await?
                else {
                    return Ok(());
                };
                let slot = self.out.slot().await;
                relay(&self.out, &c.link, id, slot, |rid| {
                    Packet::ReadLink(ReadLink {
                        id: rid,
                        path: c.path.clone(),
                    })
                })
                .await;
            }
            Packet::Symlink(request) => {
                // Refused whatever the rules say; recorded with the session of its target when
                // that target is in use, else as a refusal of its own.
                let why = "creating links is not allowed through Gatehouse".to_owned();
                let on = match path::locate(&request.linkpath) {
                    Ok(Location::Target(at)) => {
                        self.links.get(&at.prefix()).cloned().map(|l| (l, at.path))
                    }
                    _ => None,
                };
                match on {
                    Some((link, path)) => {
                        let entry = Entry::new("symlink", &path, Outcome::Denied(why));
                        self.deny(request.id, &link, entry).await?;
                    }
                    None => self.refuse_outside(request.id, "symlink", &request.linkpath, why),
                }
            }
            Packet::Extended(ext) => {
                let why = format!("the SFTP extension {:?} is not offered", ext.request);
                self.out.status(ext.id, StatusCode::OpUnsupported, why);
            }
            other => {
                let id = other.get_request_id();
                self.out.status(id, StatusCode::BadMessage, "not a request");
            }
        }
        Ok(())
    }

    /// `REALPATH`: the normalised path, as the bastion's tree shows it. Nothing is asked of the
    /// target, so nothing about where its links lead is revealed.
    fn realpath(&self, id: u32, raw: &str) {
        let shown = match path::locate(raw) {
            Ok(Location::Root) => "/".to_owned(),
            Ok(Location::Target(at)) => at.visible(),
            Err(e) => return self.out.status(id, StatusCode::NoSuchFile, e.to_string()),
        };
        let mut name = russh_sftp::protocol::File::dummy(shown);
        name.attrs = directory_attrs();
        self.out.reply(
            id,
            Packet::Name(Name {
                id,
                files: vec![name],
            }),
        );
    }

    /// `STAT` (`follow`) and `LSTAT`.
    async fn stat(&mut self, id: u32, raw: &str, follow: bool) -> Result<(), Fault> {
        if let Ok(Location::Root) = path::locate(raw) {
            let attrs = directory_attrs();
            self.out.reply(id, Packet::Attrs(Attrs { id, attrs }));
            return Ok(());
        }
        let Some(c) = self.checked(id, "stat", raw, Access::Stat, follow).await? else {
            return Ok(());
        };
        let slot = self.out.slot().await;
        relay(&self.out, &c.link, id, slot, |rid| match follow {
            true => Packet::Stat(Stat {
                id: rid,
                path: c.path.clone(),
            }),
            false => Packet::Lstat(Lstat {
                id: rid,
                path: c.path.clone(),
            }),
        })
        .await;
        Ok(())
    }

    /// `OPEN`: for reading, writing or both, each checked against its rules.
    async fn open(&mut self, open: Open) -> Result<(), Fault> {
        let Open {
            id,
            filename,
            pflags,
            attrs,
        } = open;
        let writes = OpenFlags::WRITE
            | OpenFlags::APPEND
            | OpenFlags::CREATE
            | OpenFlags::TRUNCATE
            | OpenFlags::EXCLUDE;
        let mode = Mode {
            read: pflags.contains(OpenFlags::READ) || !pflags.intersects(writes),
            write: pflags.intersects(writes),
        };
        let op = op_name(mode);
        let first = if mode.read {
            Access::Read
        } else {
            Access::Write
        };
        let Some(c) = self.checked(id, op, &filename, first, true).await? else {
            return Ok(());
        };
        if mode.read && mode.write && !self.deny_unless(id, &c, op, Access::Write).await? {
            return Ok(());
        }
        let target = c.path.clone();
        let reply = c
            .link
            .remote
            .ask(|rid| {
                Packet::Open(Open {
                    id: rid,
                    filename: target,
                    pflags,
                    attrs,
                })
            })
            .await;
        let handle = match reply {
            Ok(Packet::Handle(Handle { handle, .. })) if !handle.contains('\u{FFFD}') => handle,
            other => {
                let (code, why) = failure(other);
                self.record(
                    &c.link,
                    Entry::new(op, &c.path, Outcome::Failed(why.clone())),
                )
                .await?;
                self.out.status(id, code, why);
                return Ok(());
            }
        };
        let hash = self.rules_hash(&c.link);
        let opened = Opened::File {
            link: c.link.clone(),
            remote: handle.clone(),
            path: c.path.clone(),
            mode,
            traffic: Arc::new(Mutex::new(Traffic::new(mode, hash))),
        };
        match self.handles.insert(opened) {
            Ok(ours) => self
                .out
                .reply(id, Packet::Handle(Handle { id, handle: ours })),
            Err(full) => {
                let _ = c
                    .link
                    .remote
                    .ask(|rid| Packet::Close(Close { id: rid, handle }))
                    .await;
                self.out.status(id, StatusCode::Failure, full.to_string());
            }
        }
        Ok(())
    }

    /// `OPENDIR`: the root lists the targets; a directory on a target needs a read rule.
    async fn opendir(&mut self, id: u32, raw: &str) -> Result<(), Fault> {
        if let Ok(Location::Root) = path::locate(raw) {
            let entries = match self.root_entries().await {
                Ok(entries) => entries,
                Err(why) => {
                    self.out.status(id, StatusCode::Failure, why);
                    return Ok(());
                }
            };
            match self.handles.insert(Opened::Root { entries }) {
                Ok(ours) => self
                    .out
                    .reply(id, Packet::Handle(Handle { id, handle: ours })),
                Err(full) => self.out.status(id, StatusCode::Failure, full.to_string()),
            }
            return Ok(());
        }
        let Some(c) = self.checked(id, "list", raw, Access::Read, true).await? else {
            return Ok(());
        };
        let target = c.path.clone();
        let reply = c
            .link
            .remote
            .ask(|rid| {
                Packet::OpenDir(OpenDir {
                    id: rid,
                    path: target,
                })
            })
            .await;
        let handle = match reply {
            Ok(Packet::Handle(Handle { handle, .. })) if !handle.contains('\u{FFFD}') => handle,
            other => {
                let (code, why) = failure(other);
                self.record(
                    &c.link,
                    Entry::new("list", &c.path, Outcome::Failed(why.clone())),
                )
                .await?;
                self.out.status(id, code, why);
                return Ok(());
            }
        };
        self.record(&c.link, Entry::new("list", &c.path, Outcome::Ok))
            .await?;
        match self.handles.insert(Opened::Dir {
            link: c.link.clone(),
            remote: handle.clone(),
        }) {
            Ok(ours) => self
                .out
                .reply(id, Packet::Handle(Handle { id, handle: ours })),
            Err(full) => {
                let _ = c
                    .link
                    .remote
                    .ask(|rid| Packet::Close(Close { id: rid, handle }))
                    .await;
                self.out.status(id, StatusCode::Failure, full.to_string());
            }
        }
        Ok(())
    }

    /// `CLOSE`: a file's transfer is recorded once the target has closed it.
    async fn close(&mut self, id: u32, handle: &str) -> Result<(), Fault> {
        match self.handles.remove(handle) {
            None => self.out.status(id, StatusCode::Failure, "no such handle"),
            Some(Opened::Root { .. }) => self.out.status(id, StatusCode::Ok, "closed"),
            Some(Opened::Dir { link, remote }) => {
                let slot = self.out.slot().await;
                relay(&self.out, &link, id, slot, |rid| {
                    Packet::Close(Close {
                        id: rid,
                        handle: remote,
                    })
                })
                .await;
            }
            Some(Opened::File {
                link,
                remote,
                path,
                mode,
                traffic,
            }) => {
                let reply = link
                    .remote
                    .ask(|rid| {
                        Packet::Close(Close {
                            id: rid,
                            handle: remote,
                        })
                    })
                    .await;
                let (code, why) = match reply {
                    Ok(Packet::Status(s)) => (s.status_code, s.error_message),
                    other => failure(other),
                };
                let outcome = match code {
                    StatusCode::Ok => Outcome::Ok,
                    _ => Outcome::Failed(why.clone()),
                };
                self.record(&link, transfer_entry(&path, mode, &traffic, outcome))
                    .await?;
                self.out.status(id, code, why);
            }
        }
        Ok(())
    }

    /// `RENAME`: both names on the same target, each checked as the entry itself (a link is
    /// renamed, not followed), both needing a write rule.
    async fn rename(&mut self, rename: Rename) -> Result<(), Fault> {
        let Rename {
            id,
            oldpath,
            newpath,
        } = rename;
        let same = match (path::locate(&oldpath), path::locate(&newpath)) {
            (Ok(Location::Target(a)), Ok(Location::Target(b))) => a.prefix() == b.prefix(),
            _ => true,
        };
        if !same {
            self.out.status(
                id,
                StatusCode::OpUnsupported,
                "a rename cannot move a file between targets",
            );
            return Ok(());
        }
        let Some(from) = self
            .checked(id, "rename", &oldpath, Access::Write, false)
            .await?
        else {
            return Ok(());
        };
        let Some(to) = self
            .checked(id, "rename", &newpath, Access::Write, false)
            .await?
        else {
            return Ok(());
        };
        let (old, new) = (from.path.clone(), to.path.clone());
        self.change(id, from, "rename", Some(to.path), move |rid| {
            Packet::Rename(Rename {
                id: rid,
                oldpath: old,
                newpath: new,
            })
        })
        .await
    }

    /// Checks a write-class request on one path and, if it is allowed, relays it with the
    /// resolved path (`make` builds the packet from the target's request id and that path).
    async fn checked_change(
        &mut self,
        id: u32,
        op: &'static str,
        raw: &str,
        follow: bool,
        make: impl FnOnce(u32, String) -> Packet,
    ) -> Result<(), Fault> {
        let Some(c) = self.checked(id, op, raw, Access::Write, follow).await? else {
            return Ok(());
        };
        let target = c.path.clone();
        self.change(id, c, op, None, move |rid| make(rid, target))
            .await
    }

    /// Sends a change (setstat, remove, mkdir, rmdir, rename), waits for the target, records it
    /// and answers.
    pub(super) async fn change(
        &mut self,
        id: u32,
        c: Checked,
        op: &'static str,
        to_path: Option<String>,
        make: impl FnOnce(u32) -> Packet,
    ) -> Result<(), Fault> {
        let reply = c.link.remote.ask(make).await;
        let (code, why) = match reply {
            Ok(Packet::Status(s)) => (s.status_code, s.error_message),
            other => failure(other),
        };
        let outcome = match code {
            StatusCode::Ok => Outcome::Ok,
            _ => Outcome::Failed(why.clone()),
        };
        let entry = Entry {
            to_path,
            ..Entry::new(op, &c.path, outcome)
        };
        self.record(&c.link, entry).await?;
        self.out.status(id, code, why);
        Ok(())
    }
}

/// `read`, `write` or `readwrite`, for the transcript.
fn op_name(mode: Mode) -> &'static str {
    match (mode.read, mode.write) {
        (true, true) => "readwrite",
        (false, true) => "write",
        _ => "read",
    }
}

/// The transcript entry of a file's transfer, with its bytes and (if taken and whole) its hash.
pub(super) fn transfer_entry(
    path: &str,
    mode: Mode,
    traffic: &Mutex<Traffic>,
    outcome: Outcome,
) -> Entry {
    let mut t = traffic.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = match (outcome, t.failed.clone()) {
        (Outcome::Ok, Some(failed)) => Outcome::Failed(failed),
        (outcome, _) => outcome,
    };
    let whole = outcome == Outcome::Ok;
    let sha256 = match (t.read_digest.take(), t.write_digest.take()) {
        (_, Some(w)) if mode.write => w.finish(),
        (Some(r), _) => r.finish(),
        _ => None,
    }
    .filter(|_| whole);
    Entry {
        bytes: Some(t.read + t.written),
        sha256,
        ..Entry::new(op_name(mode), path, outcome)
    }
}
