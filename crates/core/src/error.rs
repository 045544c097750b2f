//! The crate's one error type. Every message says what went wrong and, where the caller can
//! act on it, what to do next, so a binary can print it as a single line.

use std::path::PathBuf;

/// Everything that can go wrong in hashguard-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A data file exists but does not hold what its format promises.
    #[error("{path}: {reason}")]
    Format {
        /// The file (or embedded blob) concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No data set could be found where one was asked for.
    #[error("{0}")]
    DataNotFound(String),
    /// An argument or configuration value is out of its valid range.
    #[error("{0}")]
    InvalidArgument(String),
    /// A model, optimiser or run record could not be loaded.
    #[error("{path}: {reason}")]
    Record {
        /// The record file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A tensor computation produced values that cannot be used (NaN, wrong shape).
    #[error("{0}")]
    Numeric(String),
    /// Another process is writing the same run directory.
    #[error("{0}")]
    Busy(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Record`] for `path`.
    pub fn record(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Record {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
