//! The data directory: where the log and the state store live, locked to one process.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Errors opening the data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory could not be created or read.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds it.
    #[error("data directory {0} is in use by another Quill process (stop it first)")]
    Locked(PathBuf),
}

/// An exclusively locked data directory. The lock is released on drop.
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and takes its lock.
    pub fn open(root: &Path) -> Result<DataDir, DataDirError> {
        let io = |source| DataDirError::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("LOCK"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DataDirError::Locked(root.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        Ok(DataDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// The root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the event log's segments live.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The state store file.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.redb")
    }

    /// The events index file. It is apart from the state store because redb has one writer per
    /// file: the indexer's large transactions would otherwise hold up the materializer, and
    /// with it every insight.
    pub fn index_file(&self) -> PathBuf {
        self.root.join("index.redb")
    }
}
