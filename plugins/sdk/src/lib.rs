//! The SDK plugin authors use to ship a VolumeStore as a dynamic library

#![deny(missing_docs)]
