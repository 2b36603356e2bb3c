//! A few screen indexes kept between requests, so a reviewer scrubbing through a recording
//! pays for reading it once, and the live view of a session in progress only reads what was
//! appended since the last request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::index::{IndexOptions, ScreenIndex};
use super::{Frame, ScreenError, Timeline};

type Slot = Arc<Mutex<Option<ScreenIndex>>>;

/// A capacity-bounded, least-recently-used cache of [`ScreenIndex`]es, keyed by path.
///
/// Every call checks the file's identity, length and modification time: an index for a file
/// that grew is extended from where it stopped, one for a file that was replaced is built
/// again. Indexes of different recordings are built concurrently; calls for one recording wait
/// for each other, so it is never read twice at once. Memory is at most `capacity` indexes
/// (see the memory bound in [`ScreenIndex`]'s module). Calls block: run them on a blocking
/// thread.
pub struct Screens {
    capacity: usize,
    options: IndexOptions,
    /// Most recently used last.
    slots: Mutex<Vec<(PathBuf, Slot)>>,
}

impl Screens {
    /// A cache of at most `capacity` indexes (at least one) with default keyframe options.
    pub fn new(capacity: usize) -> Self {
        Self::with_options(capacity, IndexOptions::default())
    }

    /// A cache of at most `capacity` indexes (at least one) built with `options`.
    pub fn with_options(capacity: usize, options: IndexOptions) -> Self {
        Self {
            capacity: capacity.max(1),
            options,
            slots: Mutex::new(Vec::new()),
        }
    }

    /// The timeline of the recording at `path`.
    pub fn timeline(&self, path: &Path) -> Result<Timeline, ScreenError> {
        self.with_index(path, |index| Ok(index.timeline().clone()))
    }

    /// The screen of the recording at `path` at `time` seconds.
    pub fn frame_at(&self, path: &Path, time: f64) -> Result<Frame, ScreenError> {
        self.with_index(path, |index| index.frame_at(time))
    }

    /// The newest screen of the recording at `path`: the live view of a session in progress.
    pub fn latest(&self, path: &Path) -> Result<Frame, ScreenError> {
        self.with_index(path, |index| Ok(index.latest()))
    }

    /// Runs `f` on the up-to-date index of the recording at `path`, building or extending it
    /// first. An index whose update fails is dropped, so the next call starts afresh.
    pub fn with_index<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&ScreenIndex) -> Result<T, ScreenError>,
    ) -> Result<T, ScreenError> {
        let slot = self.slot(path);
        // A panic while the slot was held leaves an index in an unknown state: start afresh.
        let mut guard = slot.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        let index = match guard.take() {
            Some(mut index) => index.refresh().map(|_| index),
            None => ScreenIndex::build_with(path, self.options),
        };
        let result = index.and_then(|index| {
            let result = f(&index);
            if result.is_ok() {
                *guard = Some(index);
            }
            result
        });
        if result.is_err() {
            drop(guard);
            self.forget(path, &slot);
        }
        result
    }

    /// How many indexes the cache holds.
    pub fn len(&self) -> usize {
        self.lock_slots().len()
    }

    /// Whether the cache holds no index.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot for `path`, made most recently used; a new slot evicts the least recently used
    /// one when the cache is full.
    fn slot(&self, path: &Path) -> Slot {
        let mut slots = self.lock_slots();
        let slot = match slots.iter().position(|(key, _)| key == path) {
            Some(at) => slots.remove(at).1,
            None => Slot::default(),
        };
        slots.push((path.to_owned(), Arc::clone(&slot)));
        if slots.len() > self.capacity {
            let excess = slots.len() - self.capacity;
            slots.drain(..excess);
        }
        slot
    }

    /// Removes `slot` from the cache, unless another call already replaced it.
    fn forget(&self, path: &Path, slot: &Slot) {
        let mut slots = self.lock_slots();
        slots.retain(|(key, held)| !(key == path && Arc::ptr_eq(held, slot)));
    }

    fn lock_slots(&self) -> MutexGuard<'_, Vec<(PathBuf, Slot)>> {
        // The list is only ever pushed to and drained whole; it is consistent after a panic.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
