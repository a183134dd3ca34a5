//! An in-memory `VolumeStore` for testing policy in isolation; never used by the daemon.
