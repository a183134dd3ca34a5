//! The zfs-zvol backend: volumes as zvols under a configured dataset

#![deny(missing_docs)]
