//! The access report: the evidence an access review asks for, from what Gatehouse already
//! keeps.
//!
//! * [`collect`] reads the sources: the store (grants, approvals, the session index, reviews,
//!   through the [`Backend`](crate::store::Backend) traits, so SQLite and PostgreSQL alike),
//!   the restricted shells' `run:` markers in the recordings, the audit log (denials, refused
//!   decisions, break-glass alerts), and checks the evidence itself (`audit verify`, every
//!   recording against its hash, the policy's digest).
//! * [`aggregate`] computes every number from those [`facts`], as pure functions.
//! * [`model`] is the result; [`html`] (one self-contained file with inline SVG plots),
//!   [`csv`] and JSON render it, and [`diff`] compares two of them.

pub mod aggregate;
pub mod collect;
pub mod csv;
pub mod diff;
mod entitlements;
pub mod facts;
pub mod html;
pub mod model;
mod svg;
mod timing;

pub use collect::{Progress, Source, generate};
pub use model::Report;

/// Why a report could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store could not be read.
    #[error("the store cannot be read: {0}")]
    Store(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A report file is not a report this version can read.
    #[error("{path} is not a Gatehouse report: {why}")]
    NotAReport {
        /// The file.
        path: String,
        /// Why not.
        why: String,
    },
}

impl ReportError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
        move |source| ReportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
