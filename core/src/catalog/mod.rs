//! The SQLite catalog: volumes, sandboxes, attachments and the operations journal.
