//! The handles a client holds: each one the bastion issued, standing for a file or directory
//! open on one target (or the bastion's own root listing), with what it was opened for and the
//! bytes it has moved. A client never sees a target's own handle, so it can only use a handle
//! for what the rules allowed when it was opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::digest::Digest;
use super::link::Link;

/// Most handles one session may hold open at once.
pub const MAX_OPEN: usize = 64;

/// What an open file may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Opened for reading (allowed by a read rule).
    pub read: bool,
    /// Opened for writing (allowed by a write rule).
    pub write: bool,
}

/// The bytes an open file has moved, and their hashes.
#[derive(Default)]
pub struct Traffic {
    /// File bytes sent to the client.
    pub read: u64,
    /// File bytes written to the target.
    pub written: u64,
    /// Hash of what was read, when the role asks for hashes.
    pub read_digest: Option<Digest>,
    /// Hash of what was written, when the role asks for hashes.
    pub write_digest: Option<Digest>,
    /// The first write the target refused, if any.
    pub failed: Option<String>,
}

/// What a handle stands for.
pub enum Opened {
    /// A file on a target.
    File {
        /// The target it is on.
        link: Arc<Link>,
        /// The target's handle.
        remote: String,
        /// The path on the target (as resolved there and checked).
        path: String,
        /// What it may be used for.
        mode: Mode,
        /// What it has moved.
        traffic: Arc<Mutex<Traffic>>,
    },
    /// A directory on a target, being listed.
    Dir {
        /// The target it is on.
        link: Arc<Link>,
        /// The target's handle.
        remote: String,
    },
    /// The bastion's root: the targets, listed once.
    Root {
        /// Names still to list; empty once sent.
        entries: Vec<String>,
    },
}

/// The handles of one session.
#[derive(Default)]
pub struct Handles {
    next: u64,
    open: HashMap<String, Opened>,
}

/// Too many handles are open.
#[derive(Debug, thiserror::Error)]
#[error("too many open files and directories (at most {MAX_OPEN})")]
pub struct Full;

impl Handles {
    /// Issues a handle for `opened`.
    pub fn insert(&mut self, opened: Opened) -> Result<String, Full> {
        if self.open.len() >= MAX_OPEN {
            return Err(Full);
        }
        self.next += 1;
        let handle = self.next.to_string();
        self.open.insert(handle.clone(), opened);
        Ok(handle)
    }

    /// What `handle` stands for.
    pub fn get(&self, handle: &str) -> Option<&Opened> {
        self.open.get(handle)
    }

    /// What `handle` stands for, to change it.
    pub fn get_mut(&mut self, handle: &str) -> Option<&mut Opened> {
        self.open.get_mut(handle)
    }

    /// Forgets `handle`.
    pub fn remove(&mut self, handle: &str) -> Option<Opened> {
        self.open.remove(handle)
    }

    /// Every handle still open (at the end of the session).
    pub fn drain(&mut self) -> Vec<Opened> {
        self.open.drain().map(|(_, o)| o).collect()
    }
}

impl Traffic {
    /// Fresh counters, with digests when `hash` is asked for.
    pub fn new(mode: Mode, hash: bool) -> Traffic {
        Traffic {
            read_digest: (hash && mode.read).then(Digest::default),
            write_digest: (hash && mode.write).then(Digest::default),
            ..Traffic::default()
        }
    }
}
