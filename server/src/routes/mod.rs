//! The routes of docs/api.md, one file per resource.

pub mod backups;
pub mod pools;
pub mod sandboxes;
pub mod volumes;
