//! The one error enum of `hoard-storage`.
//!
//! Invariants:
//! - Every fallible function of this crate returns [`Result`]; other crates convert [`StorageError`] at their
//!   border (S3 error codes are made in `s3/`, never here).
//! - [`StorageError::NotFound`] means "this thing does not exist", [`StorageError::Corrupt`] means "it exists but
//!   its bytes fail a checksum, magic or length check". Callers treat both as "this shard is unusable, fall
//!   back to parity and tell repair"; they differ only in what repair and scrub report.
//! - Variants are only ever added, so matches elsewhere keep their meaning.

/// Everything that can go wrong storing or reading bytes at rest.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error other than "not found" (which maps to [`StorageError::NotFound`]).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A file, shard or record that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Bytes that exist but fail a checksum, magic, version or length check.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Erasure coding failed (too few pieces present, pieces of unequal length, impossible parameters).
    #[error("erasure coding: {0}")]
    Ec(String),
    /// A disk file name that is empty, absolute, has empty/`.`/`..` components or is reserved.
    #[error("invalid file name: {0}")]
    InvalidName(String),
    /// A shard layout or piece that can never be valid (zero data shards, too many shards, a piece of the
    /// wrong length): a caller's bug, not damage on disk.
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, StorageError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_convert_with_question_mark() {
        fn fails() -> Result<()> {
            Err(std::io::Error::other("disk on fire"))?;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert!(matches!(err, StorageError::Io(_)));
        assert!(err.to_string().contains("disk on fire"));
    }
}
