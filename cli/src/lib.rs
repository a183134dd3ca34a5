//! kiln: the command-line client of kilnd

#![deny(missing_docs)]
