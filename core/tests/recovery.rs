//! Start-up recovery of each interrupted operation kind, and
//! reconciliation of the pools with the catalog both ways.
//!
//! A crash is simulated by writing what an operation leaves behind when
//! interrupted (its journal entry, its catalog row, its backend state)
//! and opening the service again.

mod common;

use common::*;
use kiln_core::catalog::{Operation, OperationState, Step};
use kiln_core::model::{Volume, VolumeStatus};
use kiln_core::{Contents, ErrorKind, VolumeId, VolumeStore};
use time::OffsetDateTime;

/// Writes a catalog row for a volume in `status` with a running journal
/// entry for `step`, as an interrupted operation leaves them.
fn interrupted(
    h: &Harness,
    name: &str,
    mib_: u64,
    status: VolumeStatus,
    step: impl FnOnce(&Volume) -> Step,
) -> Volume {
    let v = Volume {
        id: VolumeId::generate(),
        name: vname(name),
        owner: actor("a").owner,
        pool: h.config.default_pool.clone(),
        size_mib: mib(mib_),
        status,
        error: None,
        created_at: OffsetDateTime::now_utc(),
        attachments: Vec::new(),
    };
    let op = Operation::start(&v.id, step(&v));
    h.service
        .catalog()
        .write(|tx| {
            tx.insert_volume(&v)?;
            tx.insert_operation(&op)
        })
        .expect("write interrupted state");
    v
}

fn create_step(v: &Volume) -> Step {
    Step::Create {
        owner: v.owner.clone(),
        name: v.name.clone(),
        pool: v.pool.clone(),
        size_mib: v.size_mib,
    }
}

fn running(h: &Harness) -> Vec<Operation> {
    h.service
        .catalog()
        .read(|tx| tx.running_operations())
        .expect("journal")
}

#[tokio::test]
async fn an_interrupted_create_is_undone() {
    let mut h = Harness::new().await;
    let with_backend = interrupted(&h, "half", 10, VolumeStatus::Creating, create_step);
    h.store
        .create(&with_backend.id, mib(10), Contents::Ext4)
        .await
        .expect("backend part");
    interrupted(&h, "none", 10, VolumeStatus::Creating, create_step);

    h.reopen().await;
    let report = h.service.recovery_report();
    assert_eq!(report.undone.len(), 2, "{report:?}");
    assert!(report.undone[0].contains("a/half"), "{report:?}");
    assert!(report.finished.is_empty() && report.unmanaged.is_empty() && report.missing.is_empty());
    assert!(h.store.ids().is_empty(), "backend volume removed");
    let a = actor("a");
    for name in ["half", "none"] {
        let err = h
            .service
            .get_volume(&a, &vname(name))
            .await
            .expect_err("row removed");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
    assert!(running(&h).is_empty());
    // The name is free again.
    h.create(&a, "half", 10).await.expect("create again");
}

#[tokio::test]
async fn an_interrupted_clone_is_undone_and_the_source_kept() {
    let mut h = Harness::new().await;
    let a = actor("a");
    let src = h.create(&a, "src", 10).await.expect("source");
    let src_id = src.id.clone();
    let dst = interrupted(&h, "dst", 10, VolumeStatus::Cloning, |v| Step::Clone {
        owner: v.owner.clone(),
        name: v.name.clone(),
        pool: v.pool.clone(),
        source: src_id,
    });
    h.store
        .clone_volume(&src.id, &dst.id)
        .await
        .expect("backend part");

    h.reopen().await;
    let report = h.service.recovery_report();
    assert_eq!(report.undone.len(), 1, "{report:?}");
    assert!(report.undone[0].starts_with("clone"), "{report:?}");
    assert_eq!(h.store.ids(), vec![src.id.clone()]);
    assert_eq!(
        h.service
            .get_volume(&a, &vname("src"))
            .await
            .expect("source"),
        src
    );
    assert!(h.service.get_volume(&a, &vname("dst")).await.is_err());
}

#[tokio::test]
async fn an_interrupted_delete_is_finished() {
    let mut h = Harness::new().await;
    let a = actor("a");
    let v = h.create(&a, "doomed", 10).await.expect("create");
    let op = Operation::start(
        &v.id,
        Step::Delete {
            owner: v.owner.clone(),
            name: v.name.clone(),
            pool: v.pool.clone(),
        },
    );
    h.service
        .catalog()
        .write(|tx| {
            tx.insert_operation(&op)?;
            tx.set_volume_status(&v.id, VolumeStatus::Deleting, None)
        })
        .expect("write interrupted state");

    h.reopen().await;
    let report = h.service.recovery_report();
    assert_eq!(report.finished.len(), 1, "{report:?}");
    assert!(h.store.ids().is_empty());
    assert!(h.service.get_volume(&a, &vname("doomed")).await.is_err());
    let ops = h
        .service
        .catalog()
        .read(|tx| tx.operations())
        .expect("journal");
    let last = ops.iter().find(|o| o.id == op.id).expect("entry kept");
    assert_eq!(last.state, OperationState::Done);
}

async fn interrupted_resize(h: &Harness, grown: bool) -> Volume {
    let a = actor("a");
    let v = h.create(&a, "data", 10).await.expect("create");
    let op = Operation::start(
        &v.id,
        Step::Resize {
            owner: v.owner.clone(),
            name: v.name.clone(),
            pool: v.pool.clone(),
            old_size_mib: mib(10),
            new_size_mib: mib(30),
        },
    );
    h.service
        .catalog()
        .write(|tx| {
            tx.insert_operation(&op)?;
            tx.set_volume_size(&v.id, mib(30))?;
            tx.set_volume_status(&v.id, VolumeStatus::Resizing, None)
        })
        .expect("write interrupted state");
    if grown {
        h.store.grow(&v.id, mib(30)).await.expect("backend grew");
    }
    v
}

#[tokio::test]
async fn an_interrupted_resize_the_backend_finished_is_finished() {
    let mut h = Harness::new().await;
    interrupted_resize(&h, true).await;
    h.reopen().await;
    assert_eq!(h.service.recovery_report().finished.len(), 1);
    let v = h
        .service
        .get_volume(&actor("a"), &vname("data"))
        .await
        .expect("get");
    assert_eq!((v.size_mib.get(), v.status), (30, VolumeStatus::Ready));
}

#[tokio::test]
async fn an_interrupted_resize_the_backend_did_not_finish_is_rolled_back() {
    let mut h = Harness::new().await;
    interrupted_resize(&h, false).await;
    h.reopen().await;
    assert_eq!(h.service.recovery_report().undone.len(), 1);
    let v = h
        .service
        .get_volume(&actor("a"), &vname("data"))
        .await
        .expect("get");
    assert_eq!((v.size_mib.get(), v.status), (10, VolumeStatus::Ready));
    assert!(running(&h).is_empty());
}

#[tokio::test]
async fn a_recovery_step_that_fails_marks_the_volume_and_is_retried() {
    let mut h = Harness::new().await;
    let v = interrupted(&h, "half", 10, VolumeStatus::Creating, create_step);
    h.store
        .create(&v.id, mib(10), Contents::Ext4)
        .await
        .expect("backend part");
    h.store.fail_next("delete", ErrorKind::Internal);

    h.reopen().await;
    let a = actor("a");
    let marked = h
        .service
        .get_volume(&a, &vname("half"))
        .await
        .expect("kept");
    assert_eq!(marked.status, VolumeStatus::Error);
    assert!(marked
        .error
        .as_deref()
        .unwrap_or("")
        .contains("could not be recovered"));
    assert_eq!(running(&h).len(), 1, "left for the next start");

    h.reopen().await;
    assert_eq!(h.service.recovery_report().undone.len(), 1);
    assert!(h.service.get_volume(&a, &vname("half")).await.is_err());
    assert!(h.store.ids().is_empty());
}

#[tokio::test]
async fn reconciliation_reports_unmanaged_and_marks_missing_volumes() {
    let mut h = Harness::new().await;
    let a = actor("a");
    let kept = h.create(&a, "kept", 10).await.expect("create");
    let lost = h.create(&a, "lost", 10).await.expect("create");
    h.store
        .delete(&lost.id)
        .await
        .expect("lost behind kiln's back");
    let stray = VolumeId::generate();
    h.store
        .create(&stray, mib(5), Contents::Ext4)
        .await
        .expect("stray");

    h.reopen().await;
    let report = h.service.recovery_report();
    assert_eq!(
        report.unmanaged,
        vec![(h.config.default_pool.clone(), stray.clone())]
    );
    assert_eq!(report.missing, vec![(a.owner.clone(), vname("lost"))]);
    assert!(
        h.store.ids().contains(&stray),
        "unmanaged volumes are never deleted"
    );

    let lost = h
        .service
        .get_volume(&a, &vname("lost"))
        .await
        .expect("never dropped");
    assert_eq!(lost.status, VolumeStatus::Error);
    assert_eq!(
        lost.error.as_deref(),
        Some("backend volume missing from pool \"default\"")
    );
    let kept_now = h
        .service
        .get_volume(&a, &vname("kept"))
        .await
        .expect("kept");
    assert_eq!(kept_now, kept);
    let pools = h.service.list_pools().await.expect("pools");
    assert_eq!(pools[0].unmanaged, vec![stray]);

    // A volume in error cannot be used, only deleted.
    let err = h
        .sandbox(&a, "sb", &[("lost", "/l", false)])
        .await
        .expect_err("attach a missing volume");
    assert!(matches!(err, kiln_core::Error::NotReady { .. }), "{err:?}");
    // An operator can clear the missing volume away.
    h.service
        .delete_volume(&a, &vname("lost"))
        .await
        .expect("delete missing");
    h.sandbox(&a, "sb", &[("kept", "/k", false)])
        .await
        .expect("a kept volume is usable");
}
