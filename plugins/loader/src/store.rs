//! [`PluginStore`]: a plugin instance as a [`VolumeStore`].

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::config::PoolConfig;
use kiln_core::{
    BackendError, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PluginInfo,
    PoolCapacity, SizeMib, SnapshotId, StoredVolume, VolumeId, VolumeStore,
};
use kiln_plugin_abi::{capabilities_from_bits, capabilities_to_bits, HandleOpened, Request};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::blocks::{PluginReader, PluginWriter};
use crate::error::PluginError;
use crate::instance::Instance;
use crate::library::{load, Plugin};

/// The options of a `driver: plugin` pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The shared library.
    library: PathBuf,
    /// Handed to the plugin as JSON.
    #[serde(default)]
    options: serde_json::Value,
}

/// A pool served by a plugin.
pub struct PluginStore {
    instance: Arc<Instance>,
    capabilities: Capabilities,
}

impl std::fmt::Debug for PluginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStore")
            .field("plugin", &self.instance.plugin.name)
            .field("library", &self.instance.plugin.library)
            .finish()
    }
}

/// Loads the pool's plugin library and opens an instance with its
/// `options`.
///
/// Fails, naming the pool and the library, when the options are wrong,
/// the library cannot be loaded, has no entry symbol, does not serve this
/// host's ABI version (both versions are named), or refuses the options.
pub async fn open(pool: &PoolConfig) -> kiln_core::Result<PluginStore> {
    let options: Options = pool.parse_options()?;
    let name = pool.name.to_string();
    let pool_error = |e: PluginError| kiln_core::Error::Pool {
        pool: name.clone(),
        operation: "open",
        source: e.into(),
    };

    let library = options.library.clone();
    let plugin = tokio::task::spawn_blocking(move || load(&library))
        .await
        .map_err(|source| {
            pool_error(PluginError::Join {
                plugin: options.library.display().to_string(),
                op: "load",
                source,
            })
        })?
        .map_err(pool_error)?;
    let store = PluginStore::open_with(plugin, options.options)
        .await
        .map_err(pool_error)?;
    let info = &store.instance.plugin;
    tracing::info!(
        pool = %pool.name,
        plugin = %info.name,
        version = %info.version,
        library = %info.library.display(),
        abi_version = info.abi_version,
        abi_age = info.abi_age,
        "plugin loaded"
    );
    Ok(store)
}

impl PluginStore {
    /// Opens an instance of an already loaded plugin with `options`.
    pub async fn open_with(
        plugin: Plugin,
        options: serde_json::Value,
    ) -> Result<PluginStore, PluginError> {
        let name = plugin.name.clone();
        let (instance, opened) =
            tokio::task::spawn_blocking(move || Instance::open(plugin, &options))
                .await
                .map_err(|source| PluginError::Join {
                    plugin: name,
                    op: "open",
                    source,
                })??;
        // The table says what the plugin may do, the instance what it can
        // do with these options: only what both say is used.
        let bits = instance.plugin.capabilities & capabilities_to_bits(opened.capabilities);
        Ok(PluginStore {
            instance: Arc::new(instance),
            capabilities: capabilities_from_bits(bits),
        })
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.instance.plugin
    }

    /// Runs `request` on a blocking thread and decodes its result.
    async fn run<T: DeserializeOwned + Send + 'static>(
        &self,
        request: Request,
    ) -> Result<T, BackendError> {
        let instance = Arc::clone(&self.instance);
        let op = request.op();
        let plugin = instance.plugin.name.clone();
        tracing::debug!(plugin = %plugin, op, "plugin call");
        let result = tokio::task::spawn_blocking(move || instance.call::<T>(&request))
            .await
            .map_err(|source| PluginError::Join { plugin, op, source })?;
        tracing::debug!(op, ok = result.is_ok(), "plugin call done");
        Ok(result?)
    }
}

#[async_trait]
impl VolumeStore for PluginStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "plugin".to_string(),
            plugin: Some(PluginInfo {
                name: self.instance.plugin.name.clone(),
                version: self.instance.plugin.version.clone(),
            }),
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, BackendError> {
        self.run(Request::Create {
            id: id.clone(),
            size_mib: size,
            contents,
        })
        .await
    }

    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError> {
        self.run(Request::Delete { id: id.clone() }).await
    }

    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), BackendError> {
        self.run(Request::Grow {
            id: id.clone(),
            new_size_mib: new_size,
        })
        .await
    }

    async fn clone_volume(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError> {
        self.run(Request::CloneVolume {
            src: src.clone(),
            dst: dst.clone(),
        })
        .await
    }

    async fn snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        self.run(Request::Snapshot {
            id: id.clone(),
            snap: snap.clone(),
        })
        .await
    }

    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        self.run(Request::DropSnapshot {
            id: id.clone(),
            snap: snap.clone(),
        })
        .await
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        let opened: HandleOpened = self
            .run(Request::OpenRead {
                id: id.clone(),
                snap: snap.cloned(),
            })
            .await?;
        Ok(Box::new(PluginReader {
            instance: Arc::clone(&self.instance),
            handle: opened.handle,
            len: opened.len,
        }))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        let opened: HandleOpened = self.run(Request::OpenWrite { id: id.clone() }).await?;
        Ok(Box::new(PluginWriter {
            instance: Arc::clone(&self.instance),
            handle: opened.handle,
            len: opened.len,
        }))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        let path: String = self.run(Request::DevicePath { id: id.clone() }).await?;
        Ok(PathBuf::from(path))
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        self.run(Request::CheckFilesystem { id: id.clone() }).await
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        self.run(Request::List).await
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        self.run(Request::Capacity).await
    }
}
