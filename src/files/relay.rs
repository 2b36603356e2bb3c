//! Requests on handles the bastion issued: reads and writes relayed to the target without
//! waiting, many at a time, counted (and hashed) as they pass; listings, stats and attribute
//! changes on what the handle was opened for.

use russh_sftp::protocol::{
    Attrs, FSetStat, Fstat, Name, Packet, Read, ReadDir, StatusCode, Write,
};

use super::check::Checked;
use super::handles::Opened;
use super::link::Link;
use super::proxy::{Fault, FileSession, Out, directory_attrs};
use super::remote::Gone;
use super::transcript::{Entry, Outcome};
use super::wire::{self, MAX_FRAME};

/// The longest read relayed at once.
const MAX_READ: u32 = 256 * 1024;

/// Keeps [`MAX_FRAME`] in view: a relayed read never asks for more than a frame can carry.
const _: () = assert!(MAX_READ < MAX_FRAME);

impl FileSession {
    /// `READ` on a file opened for reading: relayed without waiting; the data is counted (and
    /// hashed) as it comes back.
    pub(super) async fn read(&mut self, read: Read) {
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
    pub(super) async fn write(&mut self, write: Write) {
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
    pub(super) async fn readdir(&mut self, id: u32, handle: &str) {
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
    pub(super) async fn fstat(&mut self, id: u32, handle: &str) {
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
    pub(super) async fn fsetstat(&mut self, set: FSetStat) -> Result<(), Fault> {
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
}

/// Relays a request whose reply goes back to the client unchanged (but for its id).
pub(super) async fn relay(
    out: &Out,
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
pub(super) fn passthrough(reply: Result<Packet, Gone>) -> Packet {
    match reply {
        Ok(packet) => packet,
        Err(gone) => wire::status(0, StatusCode::Failure, format!("gatehouse: {gone}")),
    }
}

/// The status to answer for a reply that is not the one hoped for.
pub(super) fn failure(reply: Result<Packet, Gone>) -> (StatusCode, String) {
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
