//! The ext4-file backend: volumes as sparse image files holding ext4

#![deny(missing_docs)]
