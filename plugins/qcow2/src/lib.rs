//! An example plugin: volumes as qcow2 images driven by qemu-img

#![deny(missing_docs)]
