//! The volume service: the rules of volumes, sandboxes and attachments.
