//! The backup engine: blocks, manifests, restore, garbage collection.
