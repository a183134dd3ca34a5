//! The scenarios, each a function of the shared [`Ctx`], and the runner
//! that turns one into an [`Outcome`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kiln_core::{
    BackendError, BlockRead, Contents, ErrorKind, FsCheck, SizeMib, SnapshotId, StoredVolume,
    VolumeId,
};
use tokio::task::JoinHandle;

use super::files::{dump, files, same_bytes, superblock, Files};
use super::host::temp_dir;
use super::{chain, Ctx, Outcome};

/// Why a scenario did not pass.
pub(crate) enum Fail {
    Failed(String),
    Skipped(String),
}

impl From<String> for Fail {
    fn from(why: String) -> Self {
        Fail::Failed(why)
    }
}

type Step = Result<(), Fail>;
type Scenario = fn(Arc<Ctx>) -> Pin<Box<dyn Future<Output = Step> + Send>>;

/// The scenarios, in the order they run.
pub(crate) const SCENARIOS: &[(&str, Scenario)] = &[
    ("create", |c| Box::pin(create(c))),
    ("data_reads_back", |c| Box::pin(data_reads_back(c))),
    ("grow", |c| Box::pin(grow(c))),
    ("clone_is_independent", |c| {
        Box::pin(clone_is_independent(c))
    }),
    ("snapshot_stays_fixed", |c| {
        Box::pin(snapshot_stays_fixed(c))
    }),
    ("sparse_reads", |c| Box::pin(sparse_reads(c))),
    ("delete_leaves_nothing", |c| {
        Box::pin(delete_leaves_nothing(c))
    }),
    ("list_is_exact", |c| Box::pin(list_is_exact(c))),
    ("list_ignores_foreign", |c| {
        Box::pin(list_ignores_foreign(c))
    }),
    ("bad_sizes_and_ids", |c| Box::pin(bad_sizes_and_ids(c))),
    ("concurrent_volumes", |c| Box::pin(concurrent_volumes(c))),
];

/// The names of the scenarios, in the order they run.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(n, _)| *n).collect()
}

/// How long one scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs one scenario in its own task (so a panic is a failure, not the end
/// of the run), then removes what it left.
pub(crate) async fn run_one(ctx: &Arc<Ctx>, name: &str, scenario: Scenario) -> Outcome {
    tracing::info!(driver = %ctx.driver, scenario = name, "conformance scenario");
    let task = tokio::spawn(scenario(Arc::clone(ctx)));
    let outcome = match tokio::time::timeout(SCENARIO_TIMEOUT, task).await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(Fail::Failed(why)))) => Outcome::Failed(why),
        Ok(Ok(Err(Fail::Skipped(why)))) => Outcome::Skipped(why),
        Ok(Err(e)) => Outcome::Failed(format!("panicked: {e}")),
        Err(_) => Outcome::Failed(format!(
            "did not finish within {}s",
            SCENARIO_TIMEOUT.as_secs()
        )),
    };
    match (ctx.cleanup().await, outcome) {
        (Ok(()), o) => o,
        (Err(e), Outcome::Failed(why)) => Outcome::Failed(format!("{why}; then {e}")),
        (Err(e), _) => Outcome::Failed(e),
    }
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(Fail::Failed(format!($($why)+)));
        }
    };
}

/// Fails unless `r` failed with `want`.
fn expect_kind<T>(r: Result<T, BackendError>, want: ErrorKind, what: &str) -> Result<(), String> {
    match r {
        Ok(_) => Err(format!("{what} succeeded; it must fail with {want}")),
        Err(e) if e.kind() == want => Ok(()),
        Err(e) => Err(format!(
            "{what} failed with {} ({}); it must fail with {want}",
            e.kind(),
            chain(&e)
        )),
    }
}

fn ok<T>(r: Result<T, BackendError>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {}", chain(&e)))
}

async fn listed(ctx: &Ctx) -> Result<BTreeMap<VolumeId, StoredVolume>, String> {
    let list = ok(ctx.store.list().await, "list")?;
    Ok(list.into_iter().map(|v| (v.id.clone(), v)).collect())
}

fn mib(n: u64) -> Result<SizeMib, String> {
    SizeMib::new(n).map_err(|e| e.to_string())
}

async fn read_superblock(ctx: &Ctx, id: &VolumeId) -> Result<super::files::Superblock, String> {
    let r = ctx.reader(id, None).await?;
    superblock(&*r).map_err(|e| format!("volume {id}: {e}"))
}

/// Reads `len` bytes at `offset` (on a blocking thread).
async fn read_bytes(r: Arc<dyn BlockRead>, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        r.read_at(offset, &mut buf)
            .map_err(|e| format!("read_at {offset}: {}", chain(&e)))?;
        Ok(buf)
    })
    .await
    .map_err(|e| format!("read task: {e}"))?
}

/// Awaits every task, then returns their values or the first failure.
async fn join_all<T>(tasks: Vec<JoinHandle<Result<T, String>>>) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let mut first = None;
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first.get_or_insert(e);
            }
            Err(e) => {
                first.get_or_insert(format!("task panicked: {e}"));
            }
        }
    }
    first.map_or(Ok(out), Err)
}

/// A fresh ext4 volume is listed with its size, fills its device, is
/// clean; the pool's capacity adds up; a blank volume reads as zeros.
async fn create(ctx: Arc<Ctx>) -> Step {
    let size = ctx.size.bytes();
    let id = ctx.create(Contents::Ext4).await?;
    let list = listed(&ctx).await?;
    let v = list
        .get(&id)
        .ok_or_else(|| format!("list does not show the new volume {id}"))?;
    ensure!(
        v.size_bytes == size,
        "list shows {id} with {} bytes, not {size}",
        v.size_bytes
    );
    let sb = read_superblock(&ctx, &id).await?;
    ensure!(
        sb.fs_bytes <= size && sb.fs_bytes >= size - size / 16,
        "the filesystem has {} bytes on a volume of {size}",
        sb.fs_bytes
    );
    let checked = ok(ctx.store.check_filesystem(&id).await, "check_filesystem")?;
    ensure!(
        checked == FsCheck::Clean,
        "a fresh filesystem checked as {checked:?}"
    );
    let dev = ctx.device(&id).await?;
    ensure!(
        dev.exists(),
        "the device path {} does not exist",
        dev.display()
    );
    let cap = ok(ctx.store.capacity().await, "capacity")?;
    ensure!(
        cap.size_bytes > 0
            && cap.free_bytes <= cap.size_bytes
            && cap.allocated_bytes <= cap.size_bytes,
        "capacity is inconsistent: {cap:?}"
    );

    let blank = ctx.create(Contents::Blank).await?;
    let r: Arc<dyn BlockRead> = Arc::from(ctx.reader(&blank, None).await?);
    ensure!(
        r.len() == size,
        "a blank volume reads {} bytes, not {size}",
        r.len()
    );
    for at in [0, size / 2, size - 65536] {
        let buf = read_bytes(Arc::clone(&r), at, 65536).await?;
        ensure!(
            buf.iter().all(|&b| b == 0),
            "a blank volume has data at byte {at}"
        );
    }
    Ok(())
}

/// Files written through the device read back after a remount.
async fn data_reads_back(ctx: Arc<Ctx>) -> Step {
    let id = ctx.create(Contents::Ext4).await?;
    let a = files(&["a1", "a2", "a3"]);
    ctx.put_files(&id, &a).await?;
    ctx.expect_files(&id, &a).await?;
    ok(ctx.store.check_filesystem(&id).await, "check_filesystem")?;
    ctx.expect_files(&id, &a).await?;
    Ok(())
}

/// Grow doubles the volume and its filesystem and keeps the files.
async fn grow(ctx: Arc<Ctx>) -> Step {
    let id = ctx.create(Contents::Ext4).await?;
    let a = files(&["g1", "g2"]);
    ctx.put_files(&id, &a).await?;
    let new = mib(ctx.size.get() * 2)?;
    ok(ctx.store.grow(&id, new).await, "grow")?;

    let list = listed(&ctx).await?;
    let shown = list.get(&id).map(|v| v.size_bytes);
    ensure!(
        shown == Some(new.bytes()),
        "after grow to {new} list shows {shown:?} bytes"
    );
    let len = ctx.reader(&id, None).await?.len();
    ensure!(
        len == new.bytes(),
        "after grow to {new} the volume reads {len} bytes"
    );
    let sb = read_superblock(&ctx, &id).await?;
    ensure!(
        sb.fs_bytes > ctx.size.bytes() && sb.fs_bytes >= new.bytes() - new.bytes() / 16,
        "after grow to {new} the filesystem has {} bytes",
        sb.fs_bytes
    );
    ctx.expect_files(&id, &a).await?;
    ok(ctx.store.check_filesystem(&id).await, "check_filesystem")?;
    Ok(())
}

/// A clone holds its source's files, has its own filesystem UUID, and
/// neither sees what is written to the other afterwards.
async fn clone_is_independent(ctx: Arc<Ctx>) -> Step {
    let src = ctx.create(Contents::Ext4).await?;
    let a = files(&["c-a1", "c-a2"]);
    ctx.put_files(&src, &a).await?;
    let dst = ctx.clone_of(&src).await?;

    let list = listed(&ctx).await?;
    let size = list.get(&dst).map(|v| v.size_bytes);
    ensure!(
        size == Some(ctx.size.bytes()),
        "list shows the clone with {size:?} bytes"
    );
    ctx.expect_files(&dst, &a).await?;
    let (s, d) = (
        read_superblock(&ctx, &src).await?,
        read_superblock(&ctx, &dst).await?,
    );
    ensure!(
        s.uuid != d.uuid,
        "the clone has its source's filesystem UUID"
    );

    let ab: Files = a.iter().cloned().chain(["c-b1".to_string()]).collect();
    ctx.put_files(&dst, &ab).await?;
    ctx.expect_files(&src, &a)
        .await
        .map_err(|e| format!("after writing to the clone: {e}"))?;
    let ac: Files = a.iter().cloned().chain(["c-c1".to_string()]).collect();
    ctx.put_files(&src, &ac).await?;
    ctx.expect_files(&dst, &ab)
        .await
        .map_err(|e| format!("after writing to the source: {e}"))?;
    ctx.expect_files(&src, &ac).await?;
    Ok(())
}

/// A snapshot keeps the files and the very blocks it was taken with while
/// its source changes; dropped, it is gone.
async fn snapshot_stays_fixed(ctx: Arc<Ctx>) -> Step {
    if !ctx.caps.snapshots {
        let id = ctx.create(Contents::Ext4).await?;
        expect_kind(
            ctx.store.snapshot(&id, &SnapshotId::generate()).await,
            ErrorKind::Unsupported,
            "snapshot on a driver without snapshots",
        )?;
        return Err(Fail::Skipped(
            "driver has no snapshots (snapshot answers unsupported, as it must)".to_string(),
        ));
    }
    let src = ctx.create(Contents::Ext4).await?;
    let a = files(&["s-a1", "s-a2"]);
    ctx.put_files(&src, &a).await?;
    let snap = ctx.snapshot(&src).await?;
    let dumps = temp_dir(&ctx.tag, "snapdump").map_err(|e| e.to_string())?;
    let (before, after) = (dumps.path().join("1.img"), dumps.path().join("2.img"));
    dump(ctx.reader(&src, Some(&snap)).await?, &before).await?;
    ctx.expect_snapshot_files(&src, &snap, &a).await?;

    let ab: Files = a.iter().cloned().chain(["s-b1".to_string()]).collect();
    ctx.put_files(&src, &ab).await?;
    ctx.expect_files(&src, &ab).await?;
    ctx.expect_snapshot_files(&src, &snap, &a)
        .await
        .map_err(|e| format!("after the source changed: {e}"))?;
    dump(ctx.reader(&src, Some(&snap)).await?, &after).await?;
    ensure!(
        same_bytes(&before, &after).await?,
        "the snapshot's blocks changed when its source did"
    );

    ok(ctx.store.drop_snapshot(&src, &snap).await, "drop_snapshot")?;
    expect_kind(
        ctx.store.open_read(&src, Some(&snap)).await,
        ErrorKind::NotFound,
        "open_read of a dropped snapshot",
    )?;
    expect_kind(
        ctx.store.drop_snapshot(&src, &snap).await,
        ErrorKind::NotFound,
        "drop_snapshot of a dropped snapshot",
    )?;
    ctx.expect_files(&src, &ab).await?;
    Ok(())
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed | 1)
        .collect()
}

fn covers(ranges: &[Range<u64>], want: Range<u64>) -> bool {
    let mut pos = want.start;
    for r in ranges {
        if r.start <= pos && r.end > pos {
            pos = r.end;
        }
        if pos >= want.end {
            return true;
        }
    }
    pos >= want.end
}

/// Block reads report holes: written ranges are allocated and read back,
/// the rest reads as zeros, zeroed ranges read as zeros.
async fn sparse_reads(ctx: Arc<Ctx>) -> Step {
    if !ctx.caps.sparse_reads {
        return Err(Fail::Skipped(
            "driver reports no holes (sparse_reads is false)".to_string(),
        ));
    }
    let id = ctx.create(Contents::Blank).await?;
    let w: Arc<dyn kiln_core::BlockWrite> =
        Arc::from(ok(ctx.store.open_write(&id).await, "open_write")?);
    let len = w.len();
    let (at1, at2) = ((len / 8) & !0xfffff, (len / 2 + len / 8) & !0xfffff);
    let (p1, p2) = (pattern(1, 1 << 20), pattern(2, 256 << 10));
    let (w2, q1, q2) = (Arc::clone(&w), p1.clone(), p2.clone());
    tokio::task::spawn_blocking(move || -> Result<(), BackendError> {
        w2.write_at(at1, &q1)?;
        w2.write_at(at2, &q2)?;
        w2.flush()
    })
    .await
    .map_err(|e| format!("write task: {e}"))?
    .map_err(|e| format!("write: {}", chain(&e)))?;

    let r: Arc<dyn BlockRead> = Arc::from(ctx.reader(&id, None).await?);
    let ranges = ok(r.allocated(), "allocated")?;
    for pair in ranges.windows(2) {
        ensure!(
            pair[0].end <= pair[1].start,
            "allocated ranges overlap or are unsorted: {ranges:?}"
        );
    }
    ensure!(
        ranges.iter().all(|r| r.start < r.end && r.end <= len),
        "allocated ranges are empty or past the end: {ranges:?}"
    );
    ensure!(
        covers(&ranges, at1..at1 + p1.len() as u64) && covers(&ranges, at2..at2 + p2.len() as u64),
        "allocated ranges {ranges:?} miss the written data"
    );
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    ensure!(
        total <= len / 2,
        "{total} of {len} bytes reported allocated after writing 1.25 MiB"
    );
    ensure!(
        read_bytes(Arc::clone(&r), at1, p1.len()).await? == p1
            && read_bytes(Arc::clone(&r), at2, p2.len()).await? == p2,
        "written data does not read back"
    );
    let gap = ranges
        .iter()
        .scan(0u64, |pos, r| {
            let g = (*pos < r.start).then_some(*pos..r.start);
            *pos = r.end;
            Some(g)
        })
        .flatten()
        .find(|g| g.end - g.start >= 4096);
    if let Some(g) = gap {
        let n = (g.end - g.start).min(1 << 20) as usize;
        ensure!(
            read_bytes(Arc::clone(&r), g.start, n)
                .await?
                .iter()
                .all(|&b| b == 0),
            "a hole at {} does not read as zeros",
            g.start
        );
    }

    let w3 = Arc::clone(&w);
    tokio::task::spawn_blocking(move || -> Result<(), BackendError> {
        w3.zero_range(at1, 1 << 20)?;
        w3.flush()
    })
    .await
    .map_err(|e| format!("zero task: {e}"))?
    .map_err(|e| format!("zero_range: {}", chain(&e)))?;
    let r = ctx.reader(&id, None).await?;
    ensure!(
        read_bytes(Arc::from(r), at1, 1 << 20)
            .await?
            .iter()
            .all(|&b| b == 0),
        "a zeroed range does not read as zeros"
    );
    Ok(())
}

/// After delete, nothing of the volume answers: not list, not the device
/// path, not block I/O, not its snapshots.
async fn delete_leaves_nothing(ctx: Arc<Ctx>) -> Step {
    let id = ctx.create(Contents::Ext4).await?;
    ctx.put_files(&id, &files(&["d1"])).await?;
    let dev = ctx.device(&id).await?;
    let snap = if ctx.caps.snapshots {
        Some(ctx.snapshot(&id).await?)
    } else {
        None
    };
    ok(ctx.store.delete(&id).await, "delete")?;

    ensure!(
        !listed(&ctx).await?.contains_key(&id),
        "list still shows the deleted volume"
    );
    expect_kind(
        ctx.store.device_path(&id).await,
        ErrorKind::NotFound,
        "device_path after delete",
    )?;
    expect_kind(
        ctx.store.open_read(&id, None).await,
        ErrorKind::NotFound,
        "open_read after delete",
    )?;
    expect_kind(
        ctx.store.open_write(&id).await,
        ErrorKind::NotFound,
        "open_write after delete",
    )?;
    if let Some(snap) = &snap {
        expect_kind(
            ctx.store.open_read(&id, Some(snap)).await,
            ErrorKind::NotFound,
            "open_read of a deleted volume's snapshot",
        )?;
    }
    // Device links (udev, /dev/zvol) may go a moment after the volume.
    let mut gone = false;
    for _ in 0..50 {
        if !dev.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(gone, "the device path {} still exists", dev.display());
    expect_kind(
        ctx.store.delete(&id).await,
        ErrorKind::NotFound,
        "a second delete",
    )?;
    Ok(())
}

/// List shows exactly the volumes made, with their sizes, and forgets a
/// deleted one. (It expects to be the pool's only user while it runs.)
async fn list_is_exact(ctx: Arc<Ctx>) -> Step {
    let before = listed(&ctx).await?;
    let a = ctx.create(Contents::Ext4).await?;
    let b_size = mib(ctx.size.get() + 16)?;
    let b = ctx.create_sized(b_size, Contents::Blank).await?;
    let after = listed(&ctx).await?;

    let new: BTreeSet<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let want: BTreeSet<_> = [&a, &b].into_iter().collect();
    ensure!(new == want, "list gained {new:?}, not exactly {want:?}");
    let lost: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    ensure!(lost.is_empty(), "list lost {lost:?}");
    ensure!(
        after[&a].size_bytes == ctx.size.bytes() && after[&b].size_bytes == b_size.bytes(),
        "list shows sizes {} and {}, not {} and {}",
        after[&a].size_bytes,
        after[&b].size_bytes,
        ctx.size.bytes(),
        b_size.bytes()
    );

    ok(ctx.store.delete(&a).await, "delete")?;
    let last = listed(&ctx).await?;
    ensure!(
        !last.contains_key(&a) && last.contains_key(&b),
        "after deleting {a} list shows {:?}",
        last.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// Objects in the pool that are not kiln's are not listed.
async fn list_ignores_foreign(ctx: Arc<Ctx>) -> Step {
    let Some(foreign) = ctx.foreign.clone() else {
        return Err(Fail::Skipped(
            "the driver's test gives no way to plant foreign objects".to_string(),
        ));
    };
    let before = listed(&ctx).await?;
    let what = foreign.plant().await.map_err(|e| format!("plant: {e}"))?;
    let after = listed(&ctx).await;
    let removed = foreign.remove().await;
    let after = after?;
    removed.map_err(|e| format!("remove what was planted: {e}"))?;
    let extra: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    ensure!(
        extra.is_empty(),
        "after planting {what} list shows {extra:?}"
    );
    Ok(())
}

/// Refused requests answer the right kind and change nothing.
async fn bad_sizes_and_ids(ctx: Arc<Ctx>) -> Step {
    let v = ctx.create(Contents::Ext4).await?;
    let uuid = read_superblock(&ctx, &v).await?.uuid;
    let size = ctx.size;
    expect_kind(
        ctx.store.grow(&v, size).await,
        ErrorKind::InvalidInput,
        "grow to the same size",
    )?;
    let half = mib((size.get() / 2).max(1))?;
    expect_kind(
        ctx.store.grow(&v, half).await,
        ErrorKind::InvalidInput,
        "grow to a smaller size",
    )?;
    let shown = listed(&ctx).await?.get(&v).map(|s| s.size_bytes);
    ensure!(
        shown == Some(size.bytes()),
        "after refused grows list shows {shown:?} bytes"
    );
    expect_kind(
        ctx.store.create(&v, size, Contents::Ext4).await,
        ErrorKind::AlreadyExists,
        "create onto an existing id",
    )?;
    let w = ctx.clone_of(&v).await?;
    expect_kind(
        ctx.store.clone_volume(&v, &w).await,
        ErrorKind::AlreadyExists,
        "clone onto an existing id",
    )?;
    let sb = read_superblock(&ctx, &v).await?;
    ensure!(
        sb.uuid == uuid && sb.fs_bytes <= size.bytes(),
        "a refused request changed the volume's filesystem"
    );

    let missing = ctx.new_id();
    let dst = ctx.new_id();
    let nf = ErrorKind::NotFound;
    expect_kind(
        ctx.store.delete(&missing).await,
        nf,
        "delete of a missing id",
    )?;
    expect_kind(
        ctx.store.grow(&missing, mib(size.get() * 2)?).await,
        nf,
        "grow of a missing id",
    )?;
    expect_kind(
        ctx.store.clone_volume(&missing, &dst).await,
        nf,
        "clone of a missing id",
    )?;
    expect_kind(
        ctx.store.open_read(&missing, None).await,
        nf,
        "open_read of a missing id",
    )?;
    expect_kind(
        ctx.store.open_write(&missing).await,
        nf,
        "open_write of a missing id",
    )?;
    expect_kind(
        ctx.store.device_path(&missing).await,
        nf,
        "device_path of a missing id",
    )?;
    expect_kind(
        ctx.store.check_filesystem(&missing).await,
        nf,
        "check_filesystem of a missing id",
    )?;
    if ctx.caps.snapshots {
        let snap = SnapshotId::generate();
        expect_kind(
            ctx.store.snapshot(&missing, &snap).await,
            nf,
            "snapshot of a missing id",
        )?;
        expect_kind(
            ctx.store.drop_snapshot(&v, &snap).await,
            nf,
            "drop of a missing snapshot",
        )?;
        expect_kind(
            ctx.store.open_read(&v, Some(&snap)).await,
            nf,
            "open_read of a missing snapshot",
        )?;
    }
    let list = listed(&ctx).await?;
    ensure!(
        !list.contains_key(&missing) && !list.contains_key(&dst),
        "a refused request left a volume behind"
    );
    ok(ctx.store.check_filesystem(&v).await, "check_filesystem")?;
    Ok(())
}

/// How many volumes [`concurrent_volumes`] works on at once.
const CONCURRENT: usize = 4;

/// Creates, writes, clones, grows, checks and deletes several volumes at
/// once.
async fn concurrent_volumes(ctx: Arc<Ctx>) -> Step {
    // Runs `f` on a clone of the context in its own task.
    macro_rules! task {
        (|$c:ident| $body:expr) => {{
            let $c = Arc::clone(&ctx);
            tokio::spawn(async move { $body })
        }};
    }
    let sets: Vec<Files> = (0..CONCURRENT)
        .map(|i| files(&[&format!("n{i}-a"), &format!("n{i}-b")]))
        .collect();
    let more: Vec<Files> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| s.iter().cloned().chain([format!("n{i}-c")]).collect())
        .collect();

    let creates = (0..CONCURRENT)
        .map(|_| task!(|c| c.create(Contents::Ext4).await))
        .collect();
    let sources = join_all(creates).await?;

    let puts = sources
        .iter()
        .zip(&sets)
        .map(|(id, set)| {
            let (id, set) = (id.clone(), set.clone());
            task!(|c| c.put_files(&id, &set).await)
        })
        .collect();
    join_all(puts).await?;

    let clones = sources
        .iter()
        .map(|id| {
            let id = id.clone();
            task!(|c| c.clone_of(&id).await)
        })
        .collect();
    let clones = join_all(clones).await?;

    // Grows of the sources and writes to the clones, all at once.
    let grown = mib(ctx.size.get() * 2)?;
    let mut mixed = Vec::new();
    for (i, id) in sources.iter().enumerate() {
        let id = id.clone();
        mixed.push(task!(|c| ok(c.store.grow(&id, grown).await, "grow")));
        let (clone, set) = (clones[i].clone(), more[i].clone());
        mixed.push(task!(|c| c.put_files(&clone, &set).await));
    }
    join_all(mixed).await?;

    let mut checks = Vec::new();
    for i in 0..CONCURRENT {
        let (src, set) = (sources[i].clone(), sets[i].clone());
        checks.push(task!(|c| c.expect_files(&src, &set).await));
        let (clone, set) = (clones[i].clone(), more[i].clone());
        checks.push(task!(|c| c.expect_files(&clone, &set).await));
    }
    join_all(checks).await?;
    let list = listed(&ctx).await?;
    for id in &sources {
        let shown = list.get(id).map(|v| v.size_bytes);
        ensure!(
            shown == Some(grown.bytes()),
            "{id} shows {shown:?} bytes after grow"
        );
    }

    let all: Vec<VolumeId> = sources.iter().chain(&clones).cloned().collect();
    let deletes = all
        .iter()
        .map(|id| {
            let id = id.clone();
            task!(|c| ok(c.store.delete(&id).await, "delete"))
        })
        .collect();
    join_all(deletes).await?;
    let list = listed(&ctx).await?;
    let left: Vec<_> = all.iter().filter(|id| list.contains_key(*id)).collect();
    ensure!(left.is_empty(), "deleted volumes still listed: {left:?}");
    Ok(())
}
