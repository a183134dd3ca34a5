//! An in-memory [`VolumeStore`] for testing policy in isolation; never
//! used by the daemon.
//!
//! [`MemoryStore`] keeps each volume as a sparse map of chunks, so tests of
//! the volume service (attachment rules, quotas, recovery) and of the
//! backup engine run without root, loop devices or images. It is compiled
//! only for kiln-core's own tests and with the `memory-store` feature,
//! which no shipped binary enables.
//!
//! Tests steer it: [`MemoryStore::fail_next`] makes the next call of an
//! operation fail with a chosen kind, [`MemoryStore::gate`] makes calls of
//! an operation wait until the test lets them go, [`MemoryStore::calls`]
//! counts calls, and [`MemoryStore::mark_unclean`] makes a filesystem
//! need repair.
//!
//! # Limitations
//!
//! There is no filesystem: `Contents::Ext4` makes a zero-filled volume
//! like `Contents::Blank`, and `check_filesystem` only clears the unclean
//! mark. Device paths name nothing on disk.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::error::{BackendError, ErrorKind};
use crate::store::{
    BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PoolCapacity, StoredVolume,
    VolumeStore,
};
use crate::types::{SizeMib, SnapshotId, VolumeId, MIB};

/// The chunk size of the sparse volume maps.
const CHUNK: u64 = 64 * 1024;

/// What the in-memory store reports.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// No such volume.
    #[error("volume {0} not found")]
    NotFound(VolumeId),
    /// No such snapshot.
    #[error("snapshot {snap} of volume {volume} not found")]
    SnapshotNotFound {
        /// The volume.
        volume: VolumeId,
        /// The snapshot.
        snap: SnapshotId,
    },
    /// The id is taken.
    #[error("volume {0} already exists")]
    Exists(VolumeId),
    /// A grow that does not grow.
    #[error("volume {volume} is {current_mib} MiB; {requested_mib} MiB does not grow it")]
    NotLarger {
        /// The volume.
        volume: VolumeId,
        /// Its size.
        current_mib: u64,
        /// The size asked for.
        requested_mib: u64,
    },
    /// An I/O outside the volume.
    #[error("{offset}+{len} is outside volume of {size} bytes")]
    OutOfRange {
        /// Where the I/O starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// The volume's size.
        size: u64,
    },
    /// A failure a test asked for.
    #[error("injected failure of {operation}")]
    Injected {
        /// The operation made to fail.
        operation: &'static str,
        /// The kind asked for.
        kind: ErrorKind,
    },
}

impl From<MemoryError> for BackendError {
    fn from(e: MemoryError) -> Self {
        let kind = match &e {
            MemoryError::NotFound(_) | MemoryError::SnapshotNotFound { .. } => ErrorKind::NotFound,
            MemoryError::Exists(_) => ErrorKind::AlreadyExists,
            MemoryError::NotLarger { .. } | MemoryError::OutOfRange { .. } => {
                ErrorKind::InvalidInput
            }
            MemoryError::Injected { kind, .. } => *kind,
        };
        BackendError::new(kind, e)
    }
}

type Chunks = BTreeMap<u64, Vec<u8>>;

#[derive(Clone, Default)]
struct Image {
    size: u64,
    chunks: Chunks,
}

#[derive(Default)]
struct MemVolume {
    image: Image,
    unclean: bool,
    snapshots: HashMap<SnapshotId, Image>,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<VolumeId, MemVolume>,
    failures: HashMap<&'static str, ErrorKind>,
    calls: HashMap<&'static str, usize>,
    gates: HashMap<&'static str, Gate>,
}

/// Makes calls of one operation wait until the test releases them.
#[derive(Clone)]
pub struct Gate {
    entered: Arc<Semaphore>,
    release: Arc<Semaphore>,
}

impl Gate {
    /// Waits until a call has reached the gate.
    pub async fn entered(&self) {
        if let Ok(p) = self.entered.acquire().await {
            p.forget();
        }
    }

    /// Lets `n` waiting (or future) calls through.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

/// An in-memory volume store; see the module docs.
///
/// Clones share the same volumes, so a test can keep one to look inside
/// while the service owns another.
#[derive(Clone)]
pub struct MemoryStore {
    size_bytes: u64,
    capabilities: Capabilities,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// A store whose pool holds `size` in all, with snapshots and sparse
    /// reads.
    pub fn new(size: SizeMib) -> Self {
        Self {
            size_bytes: size.bytes(),
            capabilities: Capabilities {
                cow_clone: false,
                snapshots: true,
                sparse_reads: true,
            },
            state: Arc::default(),
        }
    }

    /// The same store declaring other capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Makes the next call of `operation` (a trait method's name, such as
    /// `create` or `check_filesystem`) fail with `kind`.
    pub fn fail_next(&self, operation: &'static str, kind: ErrorKind) {
        lock(&self.state).failures.insert(operation, kind);
    }

    /// Makes calls of `operation` wait at a gate until released.
    pub fn gate(&self, operation: &'static str) -> Gate {
        let gate = Gate {
            entered: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        };
        lock(&self.state).gates.insert(operation, gate.clone());
        gate
    }

    /// Removes the gate of `operation`, letting every waiting call go.
    pub fn ungate(&self, operation: &'static str) {
        if let Some(g) = lock(&self.state).gates.remove(operation) {
            g.release(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// How many times `operation` was called.
    pub fn calls(&self, operation: &str) -> usize {
        lock(&self.state).calls.get(operation).copied().unwrap_or(0)
    }

    /// Marks a volume's filesystem as not cleanly unmounted.
    pub fn mark_unclean(&self, id: &VolumeId) {
        if let Some(v) = lock(&self.state).volumes.get_mut(id) {
            v.unclean = true;
        }
    }

    /// The ids held, sorted.
    pub fn ids(&self) -> Vec<VolumeId> {
        lock(&self.state).volumes.keys().cloned().collect()
    }

    /// The size in bytes of volume `id`, if it exists.
    pub fn size_of(&self, id: &VolumeId) -> Option<u64> {
        lock(&self.state).volumes.get(id).map(|v| v.image.size)
    }

    /// Counts the call, waits at its gate if there is one, and fails it
    /// if a failure was asked for.
    async fn enter(&self, operation: &'static str) -> Result<(), BackendError> {
        let gate = {
            let mut st = lock(&self.state);
            *st.calls.entry(operation).or_default() += 1;
            st.gates.get(operation).cloned()
        };
        if let Some(g) = gate {
            g.entered.add_permits(1);
            if let Ok(p) = g.release.acquire().await {
                p.forget();
            }
        }
        match lock(&self.state).failures.remove(operation) {
            Some(kind) => Err(MemoryError::Injected { operation, kind }.into()),
            None => Ok(()),
        }
    }

    fn stored(id: &VolumeId, v: &MemVolume) -> StoredVolume {
        StoredVolume {
            id: id.clone(),
            size_bytes: v.image.size,
            allocated_bytes: Some(v.image.chunks.len() as u64 * CHUNK),
        }
    }
}

#[async_trait]
impl VolumeStore for MemoryStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "memory".to_string(),
            plugin: None,
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        _contents: Contents,
    ) -> Result<StoredVolume, BackendError> {
        self.enter("create").await?;
        let mut st = lock(&self.state);
        if st.volumes.contains_key(id) {
            return Err(MemoryError::Exists(id.clone()).into());
        }
        let v = MemVolume {
            image: Image {
                size: size.bytes(),
                chunks: Chunks::new(),
            },
            ..MemVolume::default()
        };
        let out = Self::stored(id, &v);
        st.volumes.insert(id.clone(), v);
        Ok(out)
    }

    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError> {
        self.enter("delete").await?;
        match lock(&self.state).volumes.remove(id) {
            Some(_) => Ok(()),
            None => Err(MemoryError::NotFound(id.clone()).into()),
        }
    }

    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), BackendError> {
        self.enter("grow").await?;
        let mut st = lock(&self.state);
        let v = st
            .volumes
            .get_mut(id)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        if new_size.bytes() <= v.image.size {
            return Err(MemoryError::NotLarger {
                volume: id.clone(),
                current_mib: v.image.size / MIB,
                requested_mib: new_size.get(),
            }
            .into());
        }
        v.image.size = new_size.bytes();
        Ok(())
    }

    async fn clone_volume(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError> {
        self.enter("clone_volume").await?;
        let mut st = lock(&self.state);
        if st.volumes.contains_key(dst) {
            return Err(MemoryError::Exists(dst.clone()).into());
        }
        let image = st
            .volumes
            .get(src)
            .ok_or_else(|| MemoryError::NotFound(src.clone()))?
            .image
            .clone();
        let v = MemVolume {
            image,
            ..MemVolume::default()
        };
        let out = Self::stored(dst, &v);
        st.volumes.insert(dst.clone(), v);
        Ok(out)
    }

    async fn snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        self.enter("snapshot").await?;
        let mut st = lock(&self.state);
        let v = st
            .volumes
            .get_mut(id)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        let image = v.image.clone();
        v.snapshots.insert(snap.clone(), image);
        Ok(())
    }

    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        self.enter("drop_snapshot").await?;
        let mut st = lock(&self.state);
        let v = st
            .volumes
            .get_mut(id)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        match v.snapshots.remove(snap) {
            Some(_) => Ok(()),
            None => Err(MemoryError::SnapshotNotFound {
                volume: id.clone(),
                snap: snap.clone(),
            }
            .into()),
        }
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        self.enter("open_read").await?;
        let st = lock(&self.state);
        let v = st
            .volumes
            .get(id)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        let image = match snap {
            None => v.image.clone(),
            Some(s) => {
                v.snapshots
                    .get(s)
                    .cloned()
                    .ok_or_else(|| MemoryError::SnapshotNotFound {
                        volume: id.clone(),
                        snap: s.clone(),
                    })?
            }
        };
        // A reader sees the volume as it was when opened.
        Ok(Box::new(Reader { image }))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        self.enter("open_write").await?;
        let size = lock(&self.state)
            .volumes
            .get(id)
            .map(|v| v.image.size)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        Ok(Box::new(Writer {
            state: Arc::clone(&self.state),
            id: id.clone(),
            size,
        }))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        self.enter("device_path").await?;
        if !lock(&self.state).volumes.contains_key(id) {
            return Err(MemoryError::NotFound(id.clone()).into());
        }
        Ok(PathBuf::from(format!("/memory-store/{id}")))
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        self.enter("check_filesystem").await?;
        let mut st = lock(&self.state);
        let v = st
            .volumes
            .get_mut(id)
            .ok_or_else(|| MemoryError::NotFound(id.clone()))?;
        Ok(if std::mem::take(&mut v.unclean) {
            FsCheck::Repaired
        } else {
            FsCheck::Clean
        })
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        self.enter("list").await?;
        let st = lock(&self.state);
        Ok(st
            .volumes
            .iter()
            .map(|(id, v)| Self::stored(id, v))
            .collect())
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        self.enter("capacity").await?;
        let st = lock(&self.state);
        let allocated: u64 = st
            .volumes
            .values()
            .map(|v| v.image.chunks.len() as u64 * CHUNK)
            .sum();
        Ok(PoolCapacity {
            size_bytes: self.size_bytes,
            allocated_bytes: allocated,
            free_bytes: self.size_bytes.saturating_sub(allocated),
            thin: None,
        })
    }
}

fn check_range(offset: u64, len: u64, size: u64) -> Result<(), BackendError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(MemoryError::OutOfRange { offset, len, size }.into()),
    }
}

struct Reader {
    image: Image,
}

impl BlockRead for Reader {
    fn len(&self) -> u64 {
        self.image.size
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &start in self.image.chunks.keys() {
            let end = (start + CHUNK).min(self.image.size);
            match out.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => out.push(start..end),
            }
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        check_range(offset, buf.len() as u64, self.image.size)?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let base = pos - pos % CHUNK;
            let within = (pos - base) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            match self.image.chunks.get(&base) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }
}

struct Writer {
    state: Arc<Mutex<State>>,
    id: VolumeId,
    size: u64,
}

impl Writer {
    fn with_image<R>(&self, f: impl FnOnce(&mut Image) -> R) -> Result<R, BackendError> {
        let mut st = lock(&self.state);
        let v = st
            .volumes
            .get_mut(&self.id)
            .ok_or_else(|| MemoryError::NotFound(self.id.clone()))?;
        Ok(f(&mut v.image))
    }
}

impl BlockWrite for Writer {
    fn len(&self) -> u64 {
        self.size
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        check_range(offset, data.len() as u64, self.size)?;
        self.with_image(|image| {
            let mut done = 0usize;
            while done < data.len() {
                let pos = offset + done as u64;
                let base = pos - pos % CHUNK;
                let within = (pos - base) as usize;
                let n = (CHUNK as usize - within).min(data.len() - done);
                let chunk = image
                    .chunks
                    .entry(base)
                    .or_insert_with(|| vec![0; CHUNK as usize]);
                chunk[within..within + n].copy_from_slice(&data[done..done + n]);
                done += n;
            }
        })
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        check_range(offset, len, self.size)?;
        self.with_image(|image| {
            let end = offset + len;
            let mut pos = offset;
            while pos < end {
                let base = pos - pos % CHUNK;
                let within = (pos - base) as usize;
                let n = (CHUNK - within as u64).min(end - pos) as usize;
                if within == 0 && n == CHUNK as usize {
                    image.chunks.remove(&base);
                } else if let Some(c) = image.chunks.get_mut(&base) {
                    c[within..within + n].fill(0);
                }
                pos += n as u64;
            }
        })
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }
}
