//! Whole-system tests: the daemon and CLI end to end, the backend conformance suite, the VM harness

#![deny(missing_docs)]
