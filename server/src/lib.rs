//! kilnd: the kiln daemon

#![deny(missing_docs)]
