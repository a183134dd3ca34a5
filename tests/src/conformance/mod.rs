//! The backend conformance suite: the same scenarios for every `VolumeStore`.
