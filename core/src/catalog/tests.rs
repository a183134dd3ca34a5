//! Unit tests of the catalog: migrations, uniqueness, attachments, journal.

use time::OffsetDateTime;

use super::*;
use crate::error::ErrorKind;
use crate::model::{SandboxState, Volume, VolumeRequest, VolumeStatus};
use crate::types::{MountPath, Owner, PoolName, SandboxName, SizeMib, VolumeId, VolumeName};

fn volume(owner: &str, name: &str) -> Volume {
    Volume {
        id: VolumeId::generate(),
        name: VolumeName::new(name).expect("valid name"),
        owner: Owner::new(owner).expect("valid owner"),
        pool: PoolName::new("default").expect("valid pool"),
        size_mib: SizeMib::new(64).expect("valid size"),
        status: VolumeStatus::Ready,
        error: None,
        created_at: OffsetDateTime::now_utc(),
        attachments: Vec::new(),
    }
}

fn request(volume: &str, mount: &str, read_only: bool) -> VolumeRequest {
    VolumeRequest {
        volume: VolumeName::new(volume).expect("valid name"),
        mount: MountPath::new(mount).expect("valid mount"),
        read_only,
    }
}

#[test]
fn migrates_from_empty_and_reopens_at_the_same_version() {
    let dir = tempfile::Builder::new()
        .prefix("kiln-catalog-test-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("catalog.db");
    {
        let c = Catalog::open(&path).expect("open empty");
        assert_eq!(c.schema_version().expect("version"), schema::VERSION);
        c.write(|tx| tx.insert_volume(&volume("a", "kept")))
            .expect("insert");
    }
    let c = Catalog::open(&path).expect("reopen");
    assert_eq!(c.schema_version().expect("version"), schema::VERSION);
    let all = c.read(|tx| tx.volumes(None)).expect("list");
    assert_eq!(all.len(), 1, "data survives a reopen");
    let mode: String = c
        .lock()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn refuses_a_schema_newer_than_itself() {
    let dir = tempfile::Builder::new()
        .prefix("kiln-catalog-test-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("catalog.db");
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    conn.pragma_update(None, "user_version", schema::VERSION + 1)
        .expect("bump version");
    drop(conn);
    let err = Catalog::open(&path).err().expect("newer schema refused");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn volume_names_are_unique_per_owner() {
    let c = Catalog::open_in_memory().expect("open");
    c.write(|tx| tx.insert_volume(&volume("a", "data")))
        .expect("first");
    let err = c
        .write(|tx| tx.insert_volume(&volume("a", "data")))
        .expect_err("same owner and name");
    assert!(matches!(err, Error::VolumeExists { .. }), "{err:?}");
    c.write(|tx| tx.insert_volume(&volume("b", "data")))
        .expect("same name, other owner");
    let a = Owner::new("a").expect("owner");
    assert_eq!(c.read(|tx| tx.volumes(Some(&a))).expect("list").len(), 1);
    assert_eq!(c.read(|tx| tx.volumes(None)).expect("list").len(), 2);
}

#[test]
fn a_failed_write_changes_nothing() {
    let c = Catalog::open_in_memory().expect("open");
    let err = c
        .write(|tx| {
            tx.insert_volume(&volume("a", "one"))?;
            tx.insert_volume(&volume("a", "one"))
        })
        .expect_err("second insert fails");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(c.read(|tx| tx.volumes(None)).expect("list").is_empty());
}

#[test]
fn sandboxes_are_unique_per_owner_and_keep_their_list() {
    let c = Catalog::open_in_memory().expect("open");
    let v = volume("a", "data");
    let owner = v.owner.clone();
    let name = SandboxName::new("sb").expect("name");
    let list = vec![
        request("data", "/data", false),
        request("gone", "/gone", true),
    ];
    let id = c
        .write(|tx| {
            tx.insert_volume(&v)?;
            let id = tx.insert_sandbox(
                &owner,
                &name,
                SandboxState::Running,
                OffsetDateTime::now_utc(),
                &list,
            )?;
            tx.attach(id, &v.id, &list[0].mount, false)?;
            tx.set_attachment_device(id, &v.id, "/dev/x")?;
            Ok(id)
        })
        .expect("insert");
    let err = c
        .write(|tx| {
            tx.insert_sandbox(
                &owner,
                &name,
                SandboxState::Stopped,
                OffsetDateTime::now_utc(),
                &[],
            )
        })
        .expect_err("same sandbox twice");
    assert!(matches!(err, Error::SandboxExists { .. }), "{err:?}");

    let row = c
        .read(|tx| tx.sandbox(&owner, &name))
        .expect("read")
        .expect("exists");
    assert_eq!(row.id, id);
    assert_eq!(row.sandbox.volumes.len(), 2);
    assert_eq!(row.sandbox.volumes[0].device.as_deref(), Some("/dev/x"));
    assert_eq!(row.sandbox.volumes[1].device, None);
    let vol = c
        .read(|tx| tx.volume_by_id(&v.id))
        .expect("read")
        .expect("exists");
    assert_eq!(vol.attachments.len(), 1);
    assert_eq!(vol.attachments[0].sandbox, name);

    // An attached volume cannot be deleted, not even by the catalog.
    let err = c.write(|tx| tx.delete_volume(&v.id)).expect_err("attached");
    assert_eq!(err.kind(), ErrorKind::Internal);

    c.write(|tx| tx.detach_all(id)).expect("detach");
    let row = c
        .read(|tx| tx.sandbox(&owner, &name))
        .expect("read")
        .expect("exists");
    assert_eq!(row.sandbox.volumes.len(), 2, "the list is kept");
    assert!(row.sandbox.volumes.iter().all(|v| v.device.is_none()));
    c.write(|tx| tx.delete_sandbox(id)).expect("delete sandbox");
    assert!(c
        .write(|tx| tx.delete_volume(&v.id))
        .expect("delete volume"));
}

#[test]
fn the_journal_round_trips_and_tracks_running_entries() {
    let c = Catalog::open_in_memory().expect("open");
    let v = volume("a", "data");
    let op = Operation::start(
        &v.id,
        Step::Resize {
            owner: v.owner.clone(),
            name: v.name.clone(),
            pool: v.pool.clone(),
            old_size_mib: SizeMib::new(64).expect("size"),
            new_size_mib: SizeMib::new(128).expect("size"),
        },
    );
    c.write(|tx| tx.insert_operation(&op)).expect("insert");
    let running = c.read(|tx| tx.running_operations()).expect("read");
    assert_eq!(running, vec![op.clone()]);
    c.write(|tx| tx.end_operation(&op.id, OperationState::Done))
        .expect("end");
    assert!(c
        .read(|tx| tx.running_operations())
        .expect("read")
        .is_empty());
    let all = c.read(|tx| tx.operations()).expect("read");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, OperationState::Done);
    assert!(all[0].finished_at.is_some());

    let running = Operation::start(&v.id, all[0].step.clone());
    c.write(|tx| tx.insert_operation(&running)).expect("insert");
    let later = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(c.write(|tx| tx.prune_operations(later)).expect("prune"), 1);
    let left = c.read(|tx| tx.operations()).expect("read");
    assert_eq!(left, vec![running], "running entries are never pruned");
}
