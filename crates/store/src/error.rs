//! Errors of the storage layer.

use sea_orm::DbErr;

/// What went wrong below the admin and request layers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// A stored secret could not be decrypted (wrong encryption key, or a corrupted row).
    #[error("cannot decrypt the secret of {what}: wrong encryption key or corrupted value")]
    Decrypt {
        /// Which row, by kind and id.
        what: String,
    },
    /// A stored JSON column does not have the expected shape.
    #[error("stored {what} is malformed: {reason}")]
    Malformed {
        /// Which column of which row.
        what: String,
        /// The parse error.
        reason: String,
    },
    /// The secrets key file could not be read or written.
    #[error("secrets key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}
