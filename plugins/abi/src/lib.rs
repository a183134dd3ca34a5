//! The versioned C ABI between kilnd and backend plugins

#![deny(missing_docs)]
