//! The lvm-thin backend: volumes as thin logical volumes in a configured thin pool

#![deny(missing_docs)]
