//! Typed errors for the data formats, so callers can match on what went wrong.
//!
//! Each message is one line and names the file, because the tools print it as
//! `tool: message` and exit 2.

use std::path::PathBuf;

/// A problem with a file in one of the workspace's formats.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a {expected} file (bad magic bytes)")]
    BadMagic {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{path}: format version {found} is not supported (this build reads version {supported}); re-run numericalize to regenerate it")]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: truncated or corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: checksum mismatch ({what}); the file was changed after it was written")]
    Checksum { path: PathBuf, what: String },
    #[error("{path}: vocab hash {found} does not match {expected} ({context})")]
    VocabMismatch {
        path: PathBuf,
        found: String,
        expected: String,
        context: String,
    },
    #[error("{path}: invalid JSON: {msg}")]
    Json { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

impl FormatError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        FormatError::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
    pub fn invalid(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FormatError::Invalid {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
