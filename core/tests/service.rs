//! The volume service's rules, tested in isolation over `MemoryStore`.

mod common;

use common::*;
use kiln_core::model::{SandboxState, VolumeStatus};
use kiln_core::{Error, ErrorKind, VolumeStore};

/// The server spawns the service's futures: they must be `Send`.
#[allow(dead_code)]
fn futures_are_send(h: &'static Harness) {
    fn send<T: Send>(_: T) {}
    let a = actor("a");
    send(h.create(&a, "x", 1));
    send(h.service.delete_volume(&a, &vname("x")));
    send(h.service.resize_volume(&a, &vname("x"), mib(2)));
    send(h.service.clone_volume(&a, &vname("x"), vname("y")));
    send(h.sandbox(&a, "s", &[]));
    send(h.service.start_sandbox(&a, &sname("s")));
    send(h.service.stop_sandbox(&a, &sname("s")));
    send(h.service.destroy_sandbox(&a, &sname("s")));
    send(h.service.hold_volume(&a, &vname("x"), "backup"));
    send(h.service.list_pools());
}

#[tokio::test]
async fn create_get_list_and_name_rules() {
    let h = Harness::new().await;
    let a = actor("a");
    let v = h.create(&a, "data", 64).await.expect("create");
    assert_eq!(v.status, VolumeStatus::Ready);
    assert_eq!(v.size_mib.get(), 64);
    assert_eq!(h.store.size_of(&v.id), Some(64 << 20));
    assert_eq!(
        h.service.get_volume(&a, &vname("data")).await.expect("get"),
        v
    );

    let err = h.create(&a, "data", 64).await.expect_err("duplicate");
    assert!(matches!(err, Error::VolumeExists { .. }), "{err:?}");

    let err = h
        .create(&a, "huge", POOL_MIB + 1)
        .await
        .expect_err("larger than the pool");
    match &err {
        Error::InvalidInput { field, reason } => {
            assert_eq!(field, "size_mib");
            assert!(
                reason.contains("default") && reason.contains("100000"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    let err = h
        .service
        .create_volume(
            &a,
            kiln_core::service::CreateVolume {
                name: vname("elsewhere"),
                size: mib(1),
                pool: Some(kiln_core::PoolName::new("nope").expect("name")),
            },
        )
        .await
        .expect_err("unknown pool");
    assert!(matches!(err, Error::PoolNotFound { .. }), "{err:?}");

    let list = h.service.list_volumes(&a, false).await.expect("list");
    assert_eq!(list.len(), 1, "failed creates left nothing: {list:?}");
    assert_eq!(h.store.ids().len(), 1);
}

#[tokio::test]
async fn owners_see_and_touch_only_their_own() {
    let h = Harness::new().await;
    let (a, b) = (actor("a"), actor("b"));
    h.create(&a, "data", 10).await.expect("a creates");
    h.create(&b, "other", 10).await.expect("b creates");

    for err in [
        h.service
            .get_volume(&b, &vname("data"))
            .await
            .expect_err("get"),
        h.service
            .delete_volume(&b, &vname("data"))
            .await
            .expect_err("delete"),
        h.service
            .resize_volume(&b, &vname("data"), mib(20))
            .await
            .expect_err("resize"),
        h.service
            .clone_volume(&b, &vname("data"), vname("mine"))
            .await
            .expect_err("clone"),
        h.sandbox(&b, "sb", &[("data", "/data", false)])
            .await
            .expect_err("attach"),
        h.service
            .hold_volume(&b, &vname("data"), "backup")
            .await
            .expect_err("hold"),
    ] {
        assert!(matches!(err, Error::VolumeNotFound { .. }), "{err:?}");
    }
    assert!(h
        .service
        .list_sandboxes(&b, false)
        .await
        .expect("list")
        .is_empty());

    let names = |v: Vec<kiln_core::model::Volume>| {
        v.into_iter()
            .map(|v| v.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(h.service.list_volumes(&b, true).await.expect("list")),
        ["other"]
    );
    assert_eq!(
        names(
            h.service
                .list_volumes(&admin("b"), false)
                .await
                .expect("list")
        ),
        ["other"]
    );
    assert_eq!(
        names(
            h.service
                .list_volumes(&admin("admin"), true)
                .await
                .expect("list")
        ),
        ["data", "other"]
    );
}

#[tokio::test]
async fn quotas_count_every_path_that_adds_size() {
    let h = Harness::with(POOL_MIB, 100).await;
    let a = actor("a");
    h.create(&a, "one", 40).await.expect("create");
    h.create(&a, "two", 40).await.expect("create");

    let err = h
        .create(&a, "three", 21)
        .await
        .expect_err("create over quota");
    match err {
        Error::QuotaExceeded {
            requested_mib,
            used_mib,
            limit_mib,
            ..
        } => assert_eq!((requested_mib, used_mib, limit_mib), (21, 80, 100)),
        other => panic!("unexpected {other:?}"),
    }
    let err = h
        .service
        .clone_volume(&a, &vname("one"), vname("copy"))
        .await
        .expect_err("clone over quota");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    let err = h
        .service
        .resize_volume(&a, &vname("one"), mib(61))
        .await
        .expect_err("resize over quota");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    h.service
        .resize_volume(&a, &vname("one"), mib(60))
        .await
        .expect("resize to exactly the quota");

    // Nothing the refused requests touched changed.
    let list = h.service.list_volumes(&a, false).await.expect("list");
    let sizes: Vec<u64> = list.iter().map(|v| v.size_mib.get()).collect();
    assert_eq!(sizes, [60, 40]);
    assert_eq!(h.store.ids().len(), 2);
    // Quotas are per owner.
    h.create(&actor("b"), "one", 100)
        .await
        .expect("b has its own quota");
}

#[tokio::test]
async fn concurrent_creates_cannot_both_pass_the_quota() {
    let h = Harness::with(POOL_MIB, 100).await;
    let a = actor("a");
    let gate = h.store.gate("create");
    let first = {
        let service = h.service.clone();
        let a = a.clone();
        tokio::spawn(async move {
            service
                .create_volume(
                    &a,
                    kiln_core::service::CreateVolume {
                        name: vname("first"),
                        size: mib(60),
                        pool: None,
                    },
                )
                .await
        })
    };
    gate.entered().await;
    let err = h.create(&a, "second", 60).await.expect_err("second create");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    // The first is visible, and busy, while the backend works.
    let v = h
        .service
        .get_volume(&a, &vname("first"))
        .await
        .expect("get");
    assert_eq!(v.status, VolumeStatus::Creating);
    let err = h
        .service
        .delete_volume(&a, &vname("first"))
        .await
        .expect_err("busy");
    assert!(
        matches!(&err, Error::Busy { operation, .. } if operation == "create"),
        "{err:?}"
    );
    gate.release(1);
    let v = first.await.expect("join").expect("first create");
    assert_eq!(v.status, VolumeStatus::Ready);
}

#[tokio::test]
async fn read_write_excludes_and_read_only_shares() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");

    let sb = h
        .sandbox(&a, "rw", &[("data", "/data", false)])
        .await
        .expect("rw");
    assert_eq!(sb.state, SandboxState::Running);
    let err = h
        .sandbox(&a, "rw2", &[("data", "/data", false)])
        .await
        .expect_err("second rw");
    assert!(
        matches!(&err, Error::Attached { volume, sandboxes } if volume == "data" && sandboxes == &["rw"]),
        "{err:?}"
    );
    let err = h
        .sandbox(&a, "ro", &[("data", "/data", true)])
        .await
        .expect_err("ro beside rw");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    h.service
        .destroy_sandbox(&a, &sname("rw"))
        .await
        .expect("destroy");

    h.sandbox(&a, "ro1", &[("data", "/data", true)])
        .await
        .expect("ro1");
    h.sandbox(&a, "ro2", &[("data", "/mnt", true)])
        .await
        .expect("ro2 shares");
    let err = h
        .sandbox(&a, "rw", &[("data", "/data", false)])
        .await
        .expect_err("rw beside ro");
    match err {
        Error::Attached { sandboxes, .. } => assert_eq!(sandboxes, ["ro1", "ro2"]),
        other => panic!("unexpected {other:?}"),
    }
    let v = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert_eq!(v.attachments.len(), 2);
    assert!(v.attachments.iter().all(|at| at.read_only));
}

#[tokio::test]
async fn attached_volumes_refuse_delete_resize_and_clone() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    h.sandbox(&a, "sb", &[("data", "/data", true)])
        .await
        .expect("attach");
    for err in [
        h.service
            .delete_volume(&a, &vname("data"))
            .await
            .expect_err("delete"),
        h.service
            .resize_volume(&a, &vname("data"), mib(20))
            .await
            .expect_err("resize"),
        h.service
            .clone_volume(&a, &vname("data"), vname("copy"))
            .await
            .expect_err("clone"),
    ] {
        assert!(
            matches!(&err, Error::Attached { sandboxes, .. } if sandboxes == &["sb"]),
            "{err:?}"
        );
    }
    let v = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert_eq!((v.size_mib.get(), v.status), (10, VolumeStatus::Ready));
    assert_eq!(h.store.ids().len(), 1);
}

#[tokio::test]
async fn sandbox_create_attaches_all_or_none() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "one", 10).await.expect("create");
    h.create(&a, "two", 10).await.expect("create");
    h.sandbox(&a, "holder", &[("two", "/two", false)])
        .await
        .expect("holder");

    let err = h
        .sandbox(&a, "sb", &[("one", "/one", false), ("two", "/two", true)])
        .await
        .expect_err("two is taken");
    assert!(
        matches!(&err, Error::Attached { volume, .. } if volume == "two"),
        "{err:?}"
    );
    let err = h
        .sandbox(
            &a,
            "sb",
            &[("one", "/one", false), ("missing", "/m", false)],
        )
        .await
        .expect_err("missing volume");
    assert!(
        matches!(&err, Error::VolumeNotFound { volume } if volume == "missing"),
        "{err:?}"
    );

    let one = h.service.get_volume(&a, &vname("one")).await.expect("get");
    assert!(one.attachments.is_empty(), "nothing attached: {one:?}");
    let err = h
        .service
        .get_sandbox(&a, &sname("sb"))
        .await
        .expect_err("no sandbox");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // A failing backend step undoes the whole sandbox too.
    h.store.fail_next("device_path", ErrorKind::Internal);
    let err = h
        .sandbox(&a, "sb", &[("one", "/one", false)])
        .await
        .expect_err("device");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("one"), "{err}");
    let one = h.service.get_volume(&a, &vname("one")).await.expect("get");
    assert!(one.attachments.is_empty());
    assert!(h.service.get_sandbox(&a, &sname("sb")).await.is_err());
}

#[tokio::test]
async fn a_sandbox_names_each_volume_and_mount_once() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "one", 10).await.expect("create");
    h.create(&a, "two", 10).await.expect("create");
    let err = h
        .sandbox(&a, "sb", &[("one", "/a", true), ("one", "/b", true)])
        .await
        .expect_err("same volume twice");
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "volumes"),
        "{err:?}"
    );
    let err = h
        .sandbox(&a, "sb", &[("one", "/a", true), ("two", "/a/", true)])
        .await
        .expect_err("same mount twice");
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "volumes"),
        "{err:?}"
    );
    h.sandbox(&a, "sb", &[])
        .await
        .expect("an empty sandbox is fine");
    let err = h
        .sandbox(&a, "sb", &[])
        .await
        .expect_err("same sandbox twice");
    assert!(matches!(err, Error::SandboxExists { .. }), "{err:?}");
}

#[tokio::test]
async fn read_only_attach_of_a_detached_volume_checks_its_filesystem() {
    let h = Harness::new().await;
    let a = actor("a");
    let v = h.create(&a, "data", 10).await.expect("create");
    h.create(&a, "rw", 10).await.expect("create");

    h.sandbox(&a, "w", &[("rw", "/rw", false)])
        .await
        .expect("rw attach");
    assert_eq!(
        h.store.calls("check_filesystem"),
        0,
        "no check before rw attach"
    );

    h.store.mark_unclean(&v.id);
    h.sandbox(&a, "r1", &[("data", "/data", true)])
        .await
        .expect("ro attach");
    assert_eq!(h.store.calls("check_filesystem"), 1);
    h.sandbox(&a, "r2", &[("data", "/data", true)])
        .await
        .expect("second ro");
    assert_eq!(
        h.store.calls("check_filesystem"),
        1,
        "already attached: no check"
    );

    // A check that fails refuses the attach and leaves nothing attached.
    h.service
        .destroy_sandbox(&a, &sname("r1"))
        .await
        .expect("destroy");
    h.service
        .destroy_sandbox(&a, &sname("r2"))
        .await
        .expect("destroy");
    h.store.fail_next("check_filesystem", ErrorKind::Internal);
    let err = h
        .sandbox(&a, "r3", &[("data", "/data", true)])
        .await
        .expect_err("fsck");
    assert!(err.chain().contains("check filesystem"), "{}", err.chain());
    let v = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert!(v.attachments.is_empty());
}

#[tokio::test]
async fn stop_detaches_start_attaches_destroy_forgets() {
    let h = Harness::new().await;
    let a = actor("a");
    let v = h.create(&a, "data", 10).await.expect("create");
    h.create(&a, "logs", 10).await.expect("create");
    let sb = h
        .sandbox(
            &a,
            "sb",
            &[("data", "/data", false), ("logs", "/logs", true)],
        )
        .await
        .expect("create sandbox");
    assert_eq!(sb.volumes.len(), 2);
    assert_eq!(
        sb.volumes[0].device.as_deref(),
        Some(format!("/memory-store/{}", v.id).as_str())
    );
    assert!(sb.volumes[1].read_only);

    let stopped = h
        .service
        .stop_sandbox(&a, &sname("sb"))
        .await
        .expect("stop");
    assert_eq!(stopped.state, SandboxState::Stopped);
    assert_eq!(stopped.volumes.len(), 2, "the list is kept");
    assert!(stopped.volumes.iter().all(|v| v.device.is_none()));
    let data = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert!(data.attachments.is_empty());

    // While it is stopped another sandbox may take the volume; starting
    // then fails by the same rules, changing nothing.
    h.sandbox(&a, "other", &[("data", "/data", false)])
        .await
        .expect("other");
    let err = h
        .service
        .start_sandbox(&a, &sname("sb"))
        .await
        .expect_err("taken");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let sb = h.service.get_sandbox(&a, &sname("sb")).await.expect("get");
    assert_eq!(sb.state, SandboxState::Stopped);
    let logs = h.service.get_volume(&a, &vname("logs")).await.expect("get");
    assert!(logs.attachments.is_empty(), "all or none on start too");
    h.service
        .destroy_sandbox(&a, &sname("other"))
        .await
        .expect("destroy");

    let started = h
        .service
        .start_sandbox(&a, &sname("sb"))
        .await
        .expect("start");
    assert_eq!(started.state, SandboxState::Running);
    assert!(started.volumes.iter().all(|v| v.device.is_some()));
    assert_eq!(
        h.service.get_sandbox(&a, &sname("sb")).await.expect("get"),
        started
    );

    h.service
        .destroy_sandbox(&a, &sname("sb"))
        .await
        .expect("destroy");
    let err = h
        .service
        .get_sandbox(&a, &sname("sb"))
        .await
        .expect_err("forgotten");
    assert!(matches!(err, Error::SandboxNotFound { .. }), "{err:?}");
    h.service
        .delete_volume(&a, &vname("data"))
        .await
        .expect("detached now");
}

#[tokio::test]
async fn starting_a_sandbox_whose_volume_was_deleted_names_it() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    h.sandbox(&a, "sb", &[("data", "/data", false)])
        .await
        .expect("sandbox");
    h.service
        .stop_sandbox(&a, &sname("sb"))
        .await
        .expect("stop");
    h.service
        .delete_volume(&a, &vname("data"))
        .await
        .expect("a stopped sandbox does not hold its volumes");
    let err = h
        .service
        .start_sandbox(&a, &sname("sb"))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, Error::VolumeNotFound { volume } if volume == "data"),
        "{err:?}"
    );
    let sb = h
        .service
        .get_sandbox(&a, &sname("sb"))
        .await
        .expect("still there");
    assert_eq!(sb.state, SandboxState::Stopped);
}

#[tokio::test]
async fn an_operation_holds_its_volumes_for_its_whole_run() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "src", 10).await.expect("create");
    let gate = h.store.gate("clone_volume");
    let clone = {
        let service = h.service.clone();
        let a = a.clone();
        tokio::spawn(async move { service.clone_volume(&a, &vname("src"), vname("dst")).await })
    };
    gate.entered().await;

    let busy = |err: Error| {
        assert!(
            matches!(&err, Error::Busy { operation, .. } if operation == "clone"),
            "{err:?}"
        );
    };
    busy(
        h.service
            .delete_volume(&a, &vname("src"))
            .await
            .expect_err("delete src"),
    );
    busy(
        h.service
            .resize_volume(&a, &vname("src"), mib(20))
            .await
            .expect_err("resize src"),
    );
    busy(
        h.sandbox(&a, "sb", &[("src", "/src", true)])
            .await
            .expect_err("attach src"),
    );
    busy(
        h.service
            .delete_volume(&a, &vname("dst"))
            .await
            .expect_err("delete dst"),
    );
    busy(
        h.service
            .hold_volume(&a, &vname("src"), "backup")
            .await
            .expect_err("hold"),
    );
    let dst = h
        .service
        .get_volume(&a, &vname("dst"))
        .await
        .expect("dst visible");
    assert_eq!(dst.status, VolumeStatus::Cloning);

    h.store.ungate("clone_volume");
    let dst = clone.await.expect("join").expect("clone");
    assert_eq!(dst.status, VolumeStatus::Ready);
    h.service
        .delete_volume(&a, &vname("src"))
        .await
        .expect("released");
}

#[tokio::test]
async fn a_backup_hold_allows_attach_but_nothing_else() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    let (v, hold) = h
        .service
        .hold_volume(&a, &vname("data"), "backup")
        .await
        .expect("hold");
    assert_eq!(hold.volume_id(), &v.id);
    let err = h
        .service
        .delete_volume(&a, &vname("data"))
        .await
        .expect_err("busy");
    assert!(
        matches!(&err, Error::Busy { operation, .. } if operation == "backup"),
        "{err:?}"
    );
    let err = h
        .service
        .hold_volume(&a, &vname("data"), "backup")
        .await
        .expect_err("second hold");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    h.sandbox(&a, "sb", &[("data", "/data", false)])
        .await
        .expect("attach while backing up");
    drop(hold);
    let (_, hold) = h
        .service
        .hold_volume(&a, &vname("data"), "backup")
        .await
        .expect("attached volumes can be held");
    drop(hold);
}

#[tokio::test]
async fn failed_backend_steps_change_nothing() {
    let h = Harness::new().await;
    let a = actor("a");
    h.store.fail_next("create", ErrorKind::InsufficientCapacity);
    let err = h.create(&a, "data", 10).await.expect_err("create fails");
    assert_eq!(err.kind(), ErrorKind::InsufficientCapacity);
    assert!(h
        .service
        .list_volumes(&a, false)
        .await
        .expect("list")
        .is_empty());

    let v = h.create(&a, "data", 10).await.expect("create");
    h.store.fail_next("grow", ErrorKind::Internal);
    let err = h
        .service
        .resize_volume(&a, &vname("data"), mib(20))
        .await
        .expect_err("grow fails");
    assert_eq!(err.kind(), ErrorKind::Internal);
    let after = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert_eq!(
        (after.size_mib.get(), after.status),
        (10, VolumeStatus::Ready)
    );

    h.store.fail_next("clone_volume", ErrorKind::Internal);
    h.service
        .clone_volume(&a, &vname("data"), vname("copy"))
        .await
        .expect_err("clone fails");
    assert!(h.service.get_volume(&a, &vname("copy")).await.is_err());

    h.store.fail_next("delete", ErrorKind::Internal);
    h.service
        .delete_volume(&a, &vname("data"))
        .await
        .expect_err("delete fails");
    assert_eq!(
        h.service
            .get_volume(&a, &vname("data"))
            .await
            .expect("get")
            .status,
        VolumeStatus::Ready
    );
    assert_eq!(h.store.ids(), vec![v.id.clone()]);

    let journal = h
        .service
        .catalog()
        .read(|tx| tx.running_operations())
        .expect("journal");
    assert!(journal.is_empty(), "every entry ended: {journal:?}");
}

#[tokio::test]
async fn resize_grows_only_and_only_within_the_pool() {
    let h = Harness::new().await;
    let a = actor("a");
    let v = h.create(&a, "data", 10).await.expect("create");
    for size in [10, 5] {
        let err = h
            .service
            .resize_volume(&a, &vname("data"), mib(size))
            .await
            .expect_err("not larger");
        assert!(
            matches!(&err, Error::InvalidInput { reason, .. } if reason.contains("only grow")),
            "{err:?}"
        );
    }
    let err = h
        .service
        .resize_volume(&a, &vname("data"), mib(POOL_MIB + 1))
        .await
        .expect_err("larger than the pool");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let grown = h
        .service
        .resize_volume(&a, &vname("data"), mib(30))
        .await
        .expect("grow");
    assert_eq!(grown.size_mib.get(), 30);
    assert_eq!(h.store.size_of(&v.id), Some(30 << 20));
}

#[tokio::test]
async fn pools_show_use_capacity_and_unmanaged_volumes() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "one", 10).await.expect("create");
    h.create(&actor("b"), "two", 30).await.expect("create");
    let stray = kiln_core::VolumeId::generate();
    h.store
        .create(&stray, mib(5), kiln_core::Contents::Blank)
        .await
        .expect("stray");

    let pools = h.service.list_pools().await.expect("pools");
    assert_eq!(pools.len(), 1);
    let p = &pools[0];
    assert_eq!((p.name.as_str(), p.driver.as_str()), ("default", "memory"));
    assert_eq!((p.provisioned_mib, p.volumes), (40, 2));
    assert_eq!(
        p.capacity.as_ref().map(|c| c.size_bytes),
        Some(POOL_MIB << 20)
    );
    assert_eq!(p.unmanaged, vec![stray]);

    h.store.fail_next("capacity", ErrorKind::Internal);
    let pools = h.service.list_pools().await.expect("pools");
    assert!(pools[0].capacity.is_none());
    assert!(pools[0].capacity_error.is_some());
}

#[tokio::test]
async fn list_volumes_reads_many_volumes_with_their_attachments() {
    let h = Harness::with(POOL_MIB, u64::MAX).await;
    let a = actor("a");
    for i in 0..200 {
        h.create(&a, &format!("v{i:03}"), 1).await.expect("create");
    }
    h.sandbox(&a, "sb", &[("v007", "/a", false), ("v150", "/b", true)])
        .await
        .expect("sandbox");
    let list = h.service.list_volumes(&a, false).await.expect("list");
    assert_eq!(list.len(), 200);
    let attached: Vec<&str> = list
        .iter()
        .filter(|v| !v.attachments.is_empty())
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(attached, ["v007", "v150"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_read_write_attaches_let_exactly_one_win() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let service = h.service.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            service
                .create_sandbox(
                    &a,
                    sname(&format!("sb{i}")),
                    vec![req("data", "/data", false)],
                )
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    let v = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert_eq!(v.attachments.len(), 1);
}

#[tokio::test]
async fn a_resizing_volume_is_shown_and_held() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    let gate = h.store.gate("grow");
    let resize = {
        let service = h.service.clone();
        let a = a.clone();
        tokio::spawn(async move { service.resize_volume(&a, &vname("data"), mib(20)).await })
    };
    gate.entered().await;
    let v = h.service.get_volume(&a, &vname("data")).await.expect("get");
    assert_eq!(v.status, VolumeStatus::Resizing);
    let err = h
        .sandbox(&a, "sb", &[("data", "/data", false)])
        .await
        .expect_err("attach while resizing");
    assert!(
        matches!(&err, Error::Busy { operation, .. } if operation == "resize"),
        "{err:?}"
    );
    gate.release(1);
    let v = resize.await.expect("join").expect("resize");
    assert_eq!((v.size_mib.get(), v.status), (20, VolumeStatus::Ready));
}

#[tokio::test]
async fn a_filesystem_check_waits_for_no_backup() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    let (_, hold) = h
        .service
        .hold_volume(&a, &vname("data"), "backup")
        .await
        .expect("hold");
    // A read-only attach of a detached volume repairs its filesystem,
    // which must not run under a backup reading it.
    let err = h
        .sandbox(&a, "sb", &[("data", "/data", true)])
        .await
        .expect_err("check under backup");
    assert!(
        matches!(&err, Error::Busy { operation, .. } if operation == "backup"),
        "{err:?}"
    );
    assert_eq!(h.store.calls("check_filesystem"), 0);
    drop(hold);
    h.sandbox(&a, "sb", &[("data", "/data", true)])
        .await
        .expect("attach after");
}

#[tokio::test]
async fn stop_and_start_are_idempotent() {
    let h = Harness::new().await;
    let a = actor("a");
    h.create(&a, "data", 10).await.expect("create");
    let sb = h
        .sandbox(&a, "sb", &[("data", "/data", false)])
        .await
        .expect("sandbox");
    assert_eq!(
        h.service
            .start_sandbox(&a, &sname("sb"))
            .await
            .expect("start"),
        sb
    );
    let stopped = h
        .service
        .stop_sandbox(&a, &sname("sb"))
        .await
        .expect("stop");
    assert_eq!(
        h.service
            .stop_sandbox(&a, &sname("sb"))
            .await
            .expect("stop"),
        stopped
    );
    for err in [
        h.service
            .stop_sandbox(&a, &sname("nope"))
            .await
            .expect_err("stop"),
        h.service
            .start_sandbox(&a, &sname("nope"))
            .await
            .expect_err("start"),
        h.service
            .destroy_sandbox(&a, &sname("nope"))
            .await
            .expect_err("destroy"),
        h.service
            .get_sandbox(&actor("b"), &sname("sb"))
            .await
            .expect_err("other owner"),
    ] {
        assert!(matches!(err, Error::SandboxNotFound { .. }), "{err:?}");
    }
}
