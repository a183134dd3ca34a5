//! The loader's errors and the one place their kinds are chosen.

use std::path::PathBuf;

use kiln_core::{BackendError, ErrorKind};
use kiln_plugin_abi::WireError;

/// What can go wrong loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The library could not be loaded at all.
    #[error("cannot load plugin library {}", library.display())]
    Load {
        /// The library.
        library: PathBuf,
        /// The dynamic loader's error.
        #[source]
        source: libloading::Error,
    },

    /// The library loaded but does not export the entry symbol.
    #[error("{} is not a kiln plugin: it has no {symbol} symbol", library.display())]
    NoEntry {
        /// The library.
        library: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
        /// The dynamic loader's error.
        #[source]
        source: libloading::Error,
    },

    /// The plugin's ABI version and age do not serve this host's version.
    #[error(
        "plugin library {} speaks kiln plugin ABI version {version} (age {age}: it serves \
         hosts speaking versions {oldest} to {version}), but this kilnd speaks version {host}",
        library.display(),
        oldest = version.saturating_sub(*age)
    )]
    Incompatible {
        /// The library.
        library: PathBuf,
        /// The plugin's ABI version.
        version: u32,
        /// The plugin's ABI age.
        age: u32,
        /// The host's ABI version.
        host: u32,
    },

    /// The entry symbol returned something that is not a usable table.
    #[error("plugin library {} has a malformed table: {reason}", library.display())]
    BadTable {
        /// The library.
        library: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The plugin answered an operation with an error.
    #[error("plugin {plugin}: {op} failed")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The operation.
        op: &'static str,
        /// The plugin's error, with its kind.
        #[source]
        source: WireError,
    },

    /// The plugin answered with something that is not the expected JSON.
    #[error("plugin {plugin}: {op} answered a malformed response")]
    Protocol {
        /// The plugin's name.
        plugin: String,
        /// The operation.
        op: &'static str,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },

    /// The blocking thread running the call failed.
    #[error("plugin {plugin}: {op} did not complete")]
    Join {
        /// The plugin's name.
        plugin: String,
        /// The operation.
        op: &'static str,
        /// The runtime's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<PluginError> for BackendError {
    fn from(e: PluginError) -> Self {
        let kind = match &e {
            // The plugin chose the kind, as a built-in backend would.
            PluginError::Failed { source, .. } => source.kind,
            // A library that is not a usable plugin is a configuration
            // mistake of the operator.
            PluginError::Load { .. }
            | PluginError::NoEntry { .. }
            | PluginError::Incompatible { .. }
            | PluginError::BadTable { .. } => ErrorKind::InvalidInput,
            PluginError::Protocol { .. } | PluginError::Join { .. } => ErrorKind::Internal,
        };
        BackendError::new(kind, e)
    }
}
