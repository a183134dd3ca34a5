//! The backup engine against real targets: moto (breadth), s3s-fs
//! (signatures, restarts) and a local folder; volumes are real sparse
//! image files, and in the `root_` test real ext4 loop-mounted.

mod backup_common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use backup_common::*;
use kiln_core::backup::{EncryptionKey, Progress, RestoreDest};
use kiln_core::config::TargetConfig;
use kiln_core::{BlockRead, ErrorKind, Owner, VolumeName};
use kiln_tests::s3::S3Server;

fn dest() -> RestoreDest {
    RestoreDest {
        pool: "default".into(),
        volume: "restored".into(),
    }
}

/// A 64 MiB sparse image with `data_mib` MiB of noise in scattered 1 MiB
/// pieces (every third MiB).
fn scattered_image(dir: &std::path::Path, name: &str, data_mib: u64, seed: u64) -> Image {
    let img = Image::create(&dir.join(name), 64 * MIB);
    for i in 0..data_mib {
        kiln_core::BlockWrite::write_at(&img, i * 3 * MIB, &noise(seed + i, MIB as usize))
            .expect("write data");
    }
    img
}

async fn restore_to_new(
    engine: &kiln_core::backup::BackupEngine,
    m: &kiln_core::backup::Manifest,
    path: &std::path::Path,
) -> kiln_core::Result<Image> {
    let out = Image::create(path, m.size_bytes);
    let w: Arc<dyn kiln_core::BlockWrite> = Arc::new(Image::open(path));
    engine.restore(m, w, &dest(), &Progress::new()).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_backup_uploads_about_the_changed_bytes_and_restores_identically() {
    let s3 = S3Server::moto();
    let dir = tempdir();
    let engine = engine(&TargetConfig::S3(s3.s3_config()), settings(1, 4));
    let img = scattered_image(dir.path(), "vol.img", 20, 1);

    let first = engine
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("first backup");
    assert_eq!(first.stats.logical_bytes, 20 * MIB);
    assert!(
        first.stats.stored_bytes >= 20 * MIB,
        "noise does not compress"
    );
    assert_eq!(first.stats.reused_bytes, 0);
    assert_eq!(first.stats.holes, 64 - 20);

    // Change 5% of the data: one of twenty 1 MiB pieces.
    kiln_core::BlockWrite::write_at(&img, 3 * MIB, &noise(999, MIB as usize)).expect("change");
    let progress = Progress::new();
    let second = engine
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &progress,
        )
        .await
        .expect("second backup");
    let changed = MIB;
    assert!(
        second.stats.stored_bytes >= changed && second.stats.stored_bytes <= changed * 12 / 10,
        "second backup stored {} bytes for {changed} changed",
        second.stats.stored_bytes
    );
    assert_eq!(second.stats.reused_bytes, 19 * MIB);
    assert_eq!(progress.bytes_done(), progress.bytes_total());

    let out = restore_to_new(&engine, &second, &dir.path().join("out.img"))
        .await
        .expect("restore");
    assert!(out.contents() == img.contents(), "restored bytes differ");
    let (a, b) = (img.allocated_bytes(), out.allocated_bytes());
    assert!(
        b <= a + MIB && b + MIB >= a,
        "allocated {b} after restore, source {a}"
    );

    let listed = engine
        .list(
            &Owner::new("team-a").expect("owner"),
            Some(&VolumeName::new("data").expect("n")),
        )
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![second.id.clone(), first.id.clone()],
        "newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_naming_endpoint_and_bucket_and_leave_no_manifest() {
    let s3 = S3Server::s3s_fs();
    let dir = tempdir();
    let mut bad = s3.s3_config();
    bad.secret_access_key = "not-the-secret".into();
    let engine_bad = engine(&TargetConfig::S3(bad), settings(1, 2));
    let img = scattered_image(dir.path(), "vol.img", 2, 2);

    let err = engine_bad
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect_err("wrong secret");
    let text = err.chain();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{text}");
    assert!(text.contains(&s3.endpoint()), "endpoint not named: {text}");
    assert!(text.contains(&s3.bucket), "bucket not named: {text}");

    let good = engine(&TargetConfig::S3(s3.s3_config()), settings(1, 2));
    let listed = good
        .list(&Owner::new("team-a").expect("owner"), None)
        .await
        .expect("list with the right secret");
    assert!(listed.is_empty(), "a manifest was written: {listed:?}");

    // s3s-fs makes buckets on demand; moto answers NoSuchBucket.
    let moto = S3Server::moto();
    let mut missing = moto.s3_config();
    missing.bucket = "no-such-bucket".into();
    let err = engine(&TargetConfig::S3(missing), settings(1, 2))
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect_err("missing bucket");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.chain());
    assert!(err.chain().contains("no-such-bucket"), "{}", err.chain());
    assert!(err.chain().contains(&moto.endpoint()), "{}", err.chain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_interrupted_by_a_server_stop_reuses_its_blocks_when_run_again() {
    let mut s3 = S3Server::s3s_fs();
    let dir = tempdir();
    let engine = Arc::new(engine(&TargetConfig::S3(s3.s3_config()), settings(1, 2)));
    let img = scattered_image(dir.path(), "vol.img", 21, 3);

    let progress = Progress::new();
    let run = {
        let (engine, path, progress) = (engine.clone(), img.path.clone(), progress.clone());
        tokio::spawn(async move {
            engine
                .backup(
                    Arc::new(Image::open(&path)),
                    source("team-a", "data"),
                    &progress,
                )
                .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while progress.bytes_done() < 6 * MIB {
        assert!(
            std::time::Instant::now() < deadline,
            "backup made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s3.stop();
    let err = run.await.expect("join").expect_err("the server went away");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.chain());

    s3.start();
    let again = engine
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("backup after restart");
    assert!(
        again.stats.reused_bytes >= 5 * MIB,
        "only {} bytes reused after the interruption",
        again.stats.reused_bytes
    );
    let out = restore_to_new(&engine, &again, &dir.path().join("out.img"))
        .await
        .expect("restore");
    assert!(out.contents() == img.contents(), "restored bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_block_fails_restore_naming_it_and_verify_names_it() {
    let dir = tempdir();
    let target_dir = dir.path().join("target");
    let target = TargetConfig::Fs {
        path: target_dir.clone(),
    };
    let engine = engine(&target, settings(1, 2));
    let img = scattered_image(dir.path(), "vol.img", 4, 4);
    let m = engine
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("backup");

    let victim = m
        .blocks
        .iter()
        .flatten()
        .nth(2)
        .expect("four data blocks")
        .clone();
    let path = target_dir.join(kiln_core::backup::keys::block(&victim));
    let mut bytes = std::fs::read(&path).expect("read the block file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).expect("damage the block");

    let report = engine
        .verify(&m, &Progress::new())
        .await
        .expect("verify runs");
    assert_eq!(report.blocks_checked, 4);
    assert_eq!(report.damaged, vec![victim.clone()]);

    // The volume being restored over is untouched: restore writes into a
    // fresh image, and the old one stays as it was.
    let before = img.contents();
    let err = restore_to_new(&engine, &m, &dir.path().join("fresh.img"))
        .await
        .expect_err("damaged block");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains(&victim), "block not named: {err}");
    assert!(img.contents() == before, "the source changed");

    std::fs::remove_file(&path).expect("remove the block");
    let err = restore_to_new(&engine, &m, &dir.path().join("fresh2.img"))
        .await
        .expect_err("missing block");
    assert!(err.to_string().contains(&victim), "{err}");
    assert!(err.chain().contains("missing"), "{}", err.chain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_delete_and_gc_every_other_backup_still_restores() {
    let s3 = S3Server::moto();
    let dir = tempdir();
    let engine = engine(&TargetConfig::S3(s3.s3_config()), settings(1, 4));
    let owner = Owner::new("team-a").expect("owner");

    let mut kept = Vec::new();
    let mut deleted = None;
    for round in 0..3u64 {
        let img = scattered_image(dir.path(), &format!("v{round}.img"), 3, 10 * round + 100);
        let m = engine
            .backup(
                Arc::new(Image::open(&img.path)),
                source("team-a", "data"),
                &Progress::new(),
            )
            .await
            .expect("backup");
        if round == 1 {
            deleted = Some(m);
        } else {
            kept.push((m, img));
        }
    }
    let deleted = deleted.expect("round 1 ran");
    engine.delete(&owner, &deleted.id).await.expect("delete");
    assert_eq!(
        engine
            .find(&owner, &deleted.id)
            .await
            .expect_err("gone")
            .kind(),
        ErrorKind::NotFound
    );

    let report = engine.gc(&Progress::new()).await.expect("gc");
    assert_eq!(report.blocks_deleted, 3, "{report:?}");
    assert_eq!(report.blocks_live, 6, "{report:?}");

    for (i, (m, img)) in kept.iter().enumerate() {
        let out = restore_to_new(&engine, m, &dir.path().join(format!("out{i}.img")))
            .await
            .expect("restore after gc");
        assert!(out.contents() == img.contents(), "backup {} differs", m.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_racing_a_running_backup_loses_nothing() {
    let s3 = S3Server::moto();
    let dir = tempdir();
    let engine = Arc::new(engine(&TargetConfig::S3(s3.s3_config()), settings(1, 2)));
    let owner = Owner::new("team-a").expect("owner");
    let img = scattered_image(dir.path(), "vol.img", 8, 7);

    for round in 0..3 {
        // Leave old unreferenced blocks that the next backup will reuse:
        // the dangerous case for a collector.
        let old = engine
            .backup(
                Arc::new(Image::open(&img.path)),
                source("team-a", "data"),
                &Progress::new(),
            )
            .await
            .expect("backup");
        engine.delete(&owner, &old.id).await.expect("delete");

        let backup = {
            let (engine, path) = (engine.clone(), img.path.clone());
            tokio::spawn(async move {
                engine
                    .backup(
                        Arc::new(Image::open(&path)),
                        source("team-a", "data"),
                        &Progress::new(),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        let gc = engine.gc(&Progress::new()).await.expect("gc");
        let m = backup.await.expect("join").expect("backup during gc");
        let out = restore_to_new(&engine, &m, &dir.path().join(format!("out{round}.img")))
            .await
            .unwrap_or_else(|e| panic!("round {round}: restore after {gc:?}: {}", e.chain()));
        assert!(
            out.contents() == img.contents(),
            "round {round}: restored bytes differ"
        );
        engine.delete(&owner, &m.id).await.expect("delete");
        drop(out);
        std::fs::remove_file(dir.path().join(format!("out{round}.img"))).expect("remove");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_target_with_encryption_and_an_empty_catalog_lists_and_restores() {
    let dir = tempdir();
    let target = TargetConfig::Fs {
        path: dir.path().join("target"),
    };
    let mut s = settings(1, 2);
    s.key = Some(EncryptionKey::from_bytes([42; 32]));
    let first_host = engine(&target, s.clone());
    let img = scattered_image(dir.path(), "vol.img", 3, 5);
    let m = first_host
        .backup(
            Arc::new(Image::open(&img.path)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("backup");
    assert!(m.encryption.is_some());
    assert_eq!(m.hash, "blake3-keyed");
    drop(first_host);

    // A second host: nothing but the target's configuration and the key.
    let second_host = engine(&target, s);
    let owner = Owner::new("team-a").expect("owner");
    let listed = second_host.list(&owner, None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, m.id);
    let other = Owner::new("team-b").expect("owner");
    assert!(second_host
        .list(&other, None)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        second_host
            .find(&other, &m.id)
            .await
            .expect_err("other owner")
            .kind(),
        ErrorKind::NotFound
    );

    let found = second_host.find(&owner, &m.id).await.expect("find");
    let out = restore_to_new(&second_host, &found, &dir.path().join("out.img"))
        .await
        .expect("restore on the second host");
    assert!(out.contents() == img.contents(), "restored bytes differ");

    let keyless = engine(&target, settings(1, 2));
    let err = restore_to_new(&keyless, &found, &dir.path().join("out2.img"))
        .await
        .expect_err("no key");
    assert!(err.to_string().contains("encrypted"), "{err}");
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(image: &std::path::Path, at: &std::path::Path) -> Self {
        std::fs::create_dir_all(at).expect("make the mount point");
        run(
            "mount",
            &[
                "-o",
                "loop",
                &image.to_string_lossy(),
                &at.to_string_lossy(),
            ],
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_ext4_files_survive_backup_change_and_restore() {
    require_root();
    let s3 = S3Server::moto();
    let dir = tempdir();
    let engine = engine(&TargetConfig::S3(s3.s3_config()), settings(4, 4));
    let src = dir.path().join("src.img");
    Image::create(&src, 512 * MIB);
    run("mkfs.ext4", &["-q", "-F", &src.to_string_lossy()]);

    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("file-{i}.bin"), noise(i, 2 * MIB as usize)))
        .collect();
    {
        let m = Mount::new(&src, &dir.path().join("mnt-src"));
        for (name, data) in &files {
            std::fs::write(m.0.join(name), data).expect("write a file");
        }
    }
    let first = engine
        .backup(
            Arc::new(Image::open(&src)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("first backup");

    // Change 5% of the files: one of twenty.
    let changed = noise(777, 2 * MIB as usize);
    {
        let m = Mount::new(&src, &dir.path().join("mnt-src"));
        std::fs::write(m.0.join("file-7.bin"), &changed).expect("rewrite a file");
    }
    let second = engine
        .backup(
            Arc::new(Image::open(&src)),
            source("team-a", "data"),
            &Progress::new(),
        )
        .await
        .expect("second backup");
    // The changed file plus the blocks of metadata it touched (inode
    // table, bitmaps, journal), at 4 MiB a block.
    assert!(
        second.stats.stored_bytes < first.stats.stored_bytes / 3,
        "second backup stored {} of {} bytes",
        second.stats.stored_bytes,
        first.stats.stored_bytes
    );

    let out_path = dir.path().join("out.img");
    let out = restore_to_new(&engine, &second, &out_path)
        .await
        .expect("restore");
    let source_alloc = Image::open(&src).allocated_bytes();
    assert!(
        out.allocated_bytes() <= source_alloc + 2 * MIB,
        "allocated {} after restore, source {source_alloc}",
        out.allocated_bytes()
    );
    assert!(
        BlockRead::len(&out) == 512 * MIB,
        "restored image has the volume's size"
    );
    let m = Mount::new(&out_path, &dir.path().join("mnt-out"));
    for (name, data) in &files {
        let got = std::fs::read(m.0.join(name)).expect("read a restored file");
        let want = if name == "file-7.bin" { &changed } else { data };
        assert!(&got == want, "{name} differs after restore");
    }
}
