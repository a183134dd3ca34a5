//! BackupTarget over opendal, for S3-compatible stores and local folders

#![deny(missing_docs)]
