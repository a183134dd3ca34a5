//! Loads backend plugins into kilnd and presents them as VolumeStores

#![deny(missing_docs)]
