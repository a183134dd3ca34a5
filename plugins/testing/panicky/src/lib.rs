//! A test plugin that works except that `grow` panics: the panic must come
//! back to kilnd as an internal error (a 500 for that request) while every
//! other request keeps working.
//!
//! Volumes are sparse raw image files holding ext4, in the folder given as
//! `path`. It exists for tests only and does the least a store can:
//! clones are refused as unsupported and capacity is a fixed 64 GiB.

#![deny(missing_docs)]

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use async_trait::async_trait;
use kiln_core::ext4::Ext4Tools;
use kiln_core::store::unsupported;
use kiln_core::{
    BackendError, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, ErrorKind, FsCheck,
    PoolCapacity, SizeMib, SnapshotId, StoredVolume, VolumeId, VolumeStore,
};

/// What `grow` panics with.
pub const PANIC_MESSAGE: &str = "grow is broken on purpose";

/// The test store.
pub struct PanickyStore {
    dir: PathBuf,
    ext4: Ext4Tools,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    path: PathBuf,
}

fn io(e: std::io::Error) -> BackendError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Internal
    };
    BackendError::new(kind, e)
}

impl PanickyStore {
    async fn open(options: serde_json::Value) -> Result<Self, BackendError> {
        let o: Options = serde_json::from_value(options)
            .map_err(|e| BackendError::new(ErrorKind::InvalidInput, e))?;
        std::fs::create_dir_all(&o.path).map_err(io)?;
        let ext4 = Ext4Tools::resolve().map_err(|e| BackendError::new(ErrorKind::Internal, e))?;
        Ok(Self { dir: o.path, ext4 })
    }

    fn image(&self, id: &VolumeId) -> PathBuf {
        self.dir.join(format!("{id}.img"))
    }

    fn stored(&self, id: &VolumeId) -> Result<StoredVolume, BackendError> {
        let meta = std::fs::metadata(self.image(id)).map_err(io)?;
        Ok(StoredVolume {
            id: id.clone(),
            size_bytes: meta.len(),
            allocated_bytes: None,
        })
    }
}

#[async_trait]
impl VolumeStore for PanickyStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "panicky".to_string(),
            plugin: None,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, BackendError> {
        let path = self.image(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => BackendError::new(ErrorKind::AlreadyExists, e),
                _ => io(e),
            })?;
        file.set_len(size.bytes()).map_err(io)?;
        if contents == Contents::Ext4 {
            if let Err(e) = self.ext4.mkfs(&path).await {
                drop(std::fs::remove_file(&path));
                return Err(BackendError::new(ErrorKind::Internal, e));
            }
        }
        self.stored(id)
    }

    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError> {
        std::fs::remove_file(self.image(id)).map_err(io)
    }

    async fn grow(&self, _id: &VolumeId, _new_size: SizeMib) -> Result<(), BackendError> {
        panic!("{PANIC_MESSAGE}");
    }

    async fn clone_volume(
        &self,
        _src: &VolumeId,
        _dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError> {
        Err(unsupported("clone"))
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        if snap.is_some() {
            return Err(unsupported("snapshot"));
        }
        let file = File::open(self.image(id)).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Box::new(Image { file, len }))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.image(id))
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Box::new(Image { file, len }))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        self.stored(id)?;
        Ok(self.image(id))
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        self.ext4
            .check(&self.image(id))
            .await
            .map_err(|e| BackendError::new(ErrorKind::Internal, e))
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".img"))
                .and_then(|n| VolumeId::parse(n).ok());
            if let Some(id) = id {
                out.push(self.stored(&id)?);
            }
        }
        Ok(out)
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        let used: u64 = self.list().await?.iter().map(|v| v.size_bytes).sum();
        let size_bytes = 64 << 30;
        Ok(PoolCapacity {
            size_bytes,
            allocated_bytes: used,
            free_bytes: size_bytes.saturating_sub(used),
            thin: None,
        })
    }
}

/// A raw image file as block reads and writes.
struct Image {
    file: File,
    len: u64,
}

impl BlockRead for Image {
    fn len(&self) -> u64 {
        self.len
    }

    // One range covering everything: this store cannot tell holes.
    #[allow(clippy::single_range_in_vec_init)]
    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        Ok(vec![0..self.len])
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.file.read_exact_at(buf, offset).map_err(io)
    }
}

impl BlockWrite for Image {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.file.write_all_at(data, offset).map_err(io)
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        let zeros = vec![0u8; 1 << 16];
        let mut at = offset;
        while at < offset + len {
            let n = zeros.len().min((offset + len - at) as usize);
            self.write_at(at, &zeros[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.file.sync_all().map_err(io)
    }
}

kiln_plugin_sdk::export_plugin! {
    name: "panicky",
    version: "0.0.1",
    store: PanickyStore,
    capabilities: Capabilities { cow_clone: false, snapshots: false, sparse_reads: false },
    open: PanickyStore::open,
}
