//! Whole-system tests of kiln and the harnesses they share: the backend
//! conformance suite every driver runs, the daemon harness (a real `kilnd`
//! on a temporary data directory, driven through the real `kiln`), and
//! fixtures for the S3-compatible servers backups are tested against.
//!
//! The tests themselves are in `tests/`; the VM tier's are run inside a
//! QEMU guest by `scripts/test-vm`.

#![deny(missing_docs)]

pub mod conformance;
pub mod daemon;
pub mod s3;
