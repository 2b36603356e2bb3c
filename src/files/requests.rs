//! Each SFTP request, checked and answered.
//!
//! A request with a path goes: normalise ([`super::path::locate`]), reach the target it names,
//! resolve the path there (`realpath`: every symlink followed, or all but the last for
//! operations on a link itself), check the role's rules, in force now, on the resolved path,
//! and send the resolved path on, never the client's text. A request on a handle is allowed
//! only for what the handle was opened for. Creating symlinks (or hard links) is refused, and
//! no SFTP extension is offered.

use std::sync::{Arc, Mutex};

use russh_sftp::protocol::{
    Attrs, Close, FSetStat, Fstat, Handle, Lstat, MkDir, Name, Open, OpenDir, OpenFlags, Packet,
    Read, ReadDir, ReadLink, RealPath, Remove, Rename, RmDir, SetStat, Stat, StatusCode, Write,
};

use super::handles::{Mode, Opened, Traffic};
use super::link::Link;
use super::path::{self, Location, PathError, TargetPath};
use super::proxy::{Fault, FileSession, directory_attrs, version};
use super::rules::Access;
use super::transcript::{Entry, Outcome};
use super::wire::{self, MAX_FRAME};

/// The longest read relayed at once.
const MAX_READ: u32 = 256 * 1024;

/// A path checked and resolved on its target.
struct Checked {
    link: Arc<Link>,
    /// The path on the target, resolved there.
    path: String,
}

/// What a check answered instead of a path: the status to send.
type Answer = (StatusCode, String);

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
                let Some(c) = self
                    .checked(id, "setstat", &path, Access::Write, true)
                    .await?
                else {
                    return Ok(());
                };
                let target = c.path.clone();
                return self
                    .change(id, c, "setstat", None, move |rid| {
                        Packet::SetStat(SetStat {
                            id: rid,
                            path: target,
                            attrs,
                        })
                    })
                    .await;
            }
            Packet::Remove(Remove { id, filename }) => {
                let Some(c) = self
                    .checked(id, "remove", &filename, Access::Write, false)
                    .await?
                else {
                    return Ok(());
                };
                let target = c.path.clone();
                return self
                    .change(id, c, "remove", None, move |rid| {
                        Packet::Remove(Remove {
                            id: rid,
                            filename: target,
                        })
                    })
                    .await;
            }
            Packet::MkDir(MkDir { id, path, attrs }) => {
                let Some(c) = self
                    .checked(id, "mkdir", &path, Access::Write, true)
                    .await?
                else {
                    return Ok(());
                };
                let target = c.path.clone();
                return self
                    .change(id, c, "mkdir", None, move |rid| {
                        Packet::MkDir(MkDir {
                            id: rid,
                            path: target,
                            attrs,
                        })
                    })
                    .await;
            }
            Packet::RmDir(RmDir { id, path }) => {
                let Some(c) = self
                    .checked(id, "rmdir", &path, Access::Write, false)
                    .await?
                else {
                    return Ok(());
                };
                let target = c.path.clone();
                return self
                    .change(id, c, "rmdir", None, move |rid| {
                        Packet::RmDir(RmDir {
                            id: rid,
                            path: target,
                        })
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
            Packet::Symlink(link) => {
                let why = "creating links is not allowed through Gatehouse".to_owned();
                match path::locate(&link.linkpath) {
                    Ok(Location::Target(at)) if self.links.contains_key(&at.prefix()) => {
                        let link_ = self.links[&at.prefix()].clone();
                        self.deny(
                            link.id,
                            &link_,
                            Entry::new("symlink", &at.path, Outcome::Denied(why)),
                        )
                        .await?;
                    }
                    _ => self.refuse_outside(link.id, "symlink", &link.linkpath, why),
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

    /// `READ` on a file opened for reading: relayed without waiting; the data is counted (and
    /// hashed) as it comes back.
    async fn read(&mut self, read: Read) {
        let Read {
            id,
            handle,
            offset,
            len,
        } = read;
        let Some(Opened::File {
            link,
            remote,
            mode,
            traffic,
            ..
        }) = self.handles.get(&handle)
        else {
            return self
                .out
                .status(id, StatusCode::Failure, "no such open file");
        };
        if !mode.read {
            return self.out.status(
                id,
                StatusCode::PermissionDenied,
                "gatehouse: denied: this file was not opened for reading",
            );
        }
        let (link, remote, traffic) = (link.clone(), remote.clone(), traffic.clone());
        let slot = self.out.slot().await;
        let out = self.out.clone();
        let counters = link.counters.clone();
        let len = len.min(MAX_READ);
        link.remote
            .call(
                move |rid| {
                    Packet::Read(Read {
                        id: rid,
                        handle: remote,
                        offset,
                        len,
                    })
                },
                Box::new(move |reply| {
                    let packet = match reply {
                        Ok(Packet::Data(data)) => {
                            let n = data.data.len() as u64;
                            counters
                                .bytes_out
                                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            let mut t = traffic.lock().unwrap_or_else(|p| p.into_inner());
                            t.read += n;
                            if let Some(d) = t.read_digest.as_mut() {
                                d.push(offset, &data.data);
                            }
                            Packet::Data(data)
                        }
                        other => passthrough(other),
                    };
                    out.reply_held(id, packet, slot);
                }),
            )
            .await;
    }

    /// `WRITE` on a file opened for writing: counted and hashed as sent, relayed without
    /// waiting; a refusal by the target marks the transfer failed.
    async fn write(&mut self, write: Write) {
        let Write {
            id,
            handle,
            offset,
            data,
        } = write;
        let Some(Opened::File {
            link,
            remote,
            mode,
            traffic,
            ..
        }) = self.handles.get(&handle)
        else {
            return self
                .out
                .status(id, StatusCode::Failure, "no such open file");
        };
        if !mode.write {
            return self.out.status(
                id,
                StatusCode::PermissionDenied,
                "gatehouse: denied: this file was not opened for writing",
            );
        }
        let (link, remote, traffic) = (link.clone(), remote.clone(), traffic.clone());
        {
            let mut t = traffic.lock().unwrap_or_else(|p| p.into_inner());
            t.written += data.len() as u64;
            if let Some(d) = t.write_digest.as_mut() {
                d.push(offset, &data);
            }
        }
        link.counters
            .bytes_in
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let slot = self.out.slot().await;
        let out = self.out.clone();
        link.remote
            .call(
                move |rid| {
                    Packet::Write(Write {
                        id: rid,
                        handle: remote,
                        offset,
                        data,
                    })
                },
                Box::new(move |reply| {
                    let packet = passthrough(reply);
                    if let Packet::Status(s) = &packet
                        && s.status_code != StatusCode::Ok
                    {
                        let mut t = traffic.lock().unwrap_or_else(|p| p.into_inner());
                        t.failed.get_or_insert_with(|| s.error_message.clone());
                    }
                    out.reply_held(id, packet, slot);
                }),
            )
            .await;
    }

    /// `READDIR`: the root's targets once, or the target's listing.
    async fn readdir(&mut self, id: u32, handle: &str) {
        match self.handles.get_mut(handle) {
            Some(Opened::Root { entries }) if entries.is_empty() => {
                self.out.status(id, StatusCode::Eof, "end of the list")
            }
            Some(Opened::Root { entries }) => {
                let files = std::mem::take(entries)
                    .into_iter()
                    .map(|name| russh_sftp::protocol::File::new(name, directory_attrs()))
                    .collect();
                self.out.reply(id, Packet::Name(Name { id, files }));
            }
            Some(Opened::Dir { link, remote }) => {
                let (link, remote) = (link.clone(), remote.clone());
                let slot = self.out.slot().await;
                relay(&self.out, &link, id, slot, |rid| {
                    Packet::ReadDir(ReadDir {
                        id: rid,
                        handle: remote,
                    })
                })
                .await;
            }
            _ => self
                .out
                .status(id, StatusCode::Failure, "no such open directory"),
        }
    }

    /// `FSTAT`.
    async fn fstat(&mut self, id: u32, handle: &str) {
        let (link, remote) = match self.handles.get(handle) {
            Some(Opened::Root { .. }) => {
                let attrs = directory_attrs();
                return self.out.reply(id, Packet::Attrs(Attrs { id, attrs }));
            }
            Some(Opened::File { link, remote, .. } | Opened::Dir { link, remote }) => {
                (link.clone(), remote.clone())
            }
            None => return self.out.status(id, StatusCode::Failure, "no such handle"),
        };
        let slot = self.out.slot().await;
        relay(&self.out, &link, id, slot, |rid| {
            Packet::Fstat(Fstat {
                id: rid,
                handle: remote,
            })
        })
        .await;
    }

    /// `FSETSTAT`: only on a file opened for writing.
    async fn fsetstat(&mut self, set: FSetStat) -> Result<(), Fault> {
        let FSetStat { id, handle, attrs } = set;
        let (link, remote, path) = match self.handles.get(&handle) {
            Some(Opened::File {
                link,
                remote,
                path,
                mode,
                ..
            }) if mode.write => (link.clone(), remote.clone(), path.clone()),
            Some(Opened::File { link, path, .. }) => {
                let (link, path) = (link.clone(), path.clone());
                let why = "changing the attributes of a file opened only for reading".to_owned();
                return self
                    .deny(
                        id,
                        &link,
                        Entry::new("setstat", &path, Outcome::Denied(why)),
                    )
                    .await;
            }
            _ => {
                self.out.status(
                    id,
                    StatusCode::PermissionDenied,
                    "gatehouse: denied: not a file opened for writing",
                );
                return Ok(());
            }
        };
        let c = Checked { link, path };
        self.change(id, c, "setstat", None, move |rid| {
            Packet::FSetStat(FSetStat {
                id: rid,
                handle: remote,
                attrs,
            })
        })
        .await
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

    /// Sends a change (setstat, remove, mkdir, rmdir, rename), waits for the target, records it
    /// and answers.
    async fn change(
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

    /// Normalises `raw`, reaches its target, resolves it there and checks `access`; `None` when
    /// the client has been answered already (refused, not found, or the root).
    async fn checked(
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
    async fn deny_unless(
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
    async fn deny(&mut self, id: u32, link: &Link, entry: Entry) -> Result<(), Fault> {
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
    fn allowed(&self, link: &Link, access: Access, path: &str) -> bool {
        let policy = self.bastion.policy();
        policy
            .role(&link.permit.role().name)
            .and_then(|r| r.files.as_ref())
            .is_some_and(|rules| rules.allows(access, path))
    }

    /// Whether the role of `link` asks for file hashes now.
    fn rules_hash(&self, link: &Link) -> bool {
        let policy = self.bastion.policy();
        policy
            .role(&link.permit.role().name)
            .and_then(|r| r.files.as_ref())
            .is_some_and(|rules| rules.hash)
    }
}

/// Relays a request whose reply goes back to the client unchanged (but for its id).
async fn relay(
    out: &super::proxy::Out,
    link: &Link,
    id: u32,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    make: impl FnOnce(u32) -> Packet,
) {
    let out = out.clone();
    link.remote
        .call(
            make,
            Box::new(move |reply| out.reply_held(id, passthrough(reply), slot)),
        )
        .await;
}

/// A reply from the target as the client gets it: the target's own packet, or a failure when
/// the target went away.
fn passthrough(reply: Result<Packet, super::remote::Gone>) -> Packet {
    match reply {
        Ok(packet) => packet,
        Err(gone) => wire::status(0, StatusCode::Failure, format!("gatehouse: {gone}")),
    }
}

/// The status to answer for a reply that is not the one hoped for.
fn failure(reply: Result<Packet, super::remote::Gone>) -> (StatusCode, String) {
    match reply {
        Ok(Packet::Status(s)) => (s.status_code, s.error_message),
        Ok(Packet::Handle(_)) => (
            StatusCode::Failure,
            "the target's handle cannot be carried".into(),
        ),
        Ok(_) => (
            StatusCode::Failure,
            "the target answered with the wrong packet".into(),
        ),
        Err(gone) => (StatusCode::Failure, format!("gatehouse: {gone}")),
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

/// Keeps [`MAX_FRAME`] in view: a relayed read never asks for more than a frame can carry.
const _: () = assert!(MAX_READ < MAX_FRAME);
