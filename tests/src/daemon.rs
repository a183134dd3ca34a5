//! A real `kilnd` on a temporary data directory, driven through the real `kiln`.
