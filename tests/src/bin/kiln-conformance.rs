//! `kiln-conformance`: runs the backend conformance suite against a plugin
//! library, for plugin authors.
//!
//! ```text
//! kiln-conformance --library PATH [--options JSON] [--access blocks|mount]
//!                  [--size-mib N]
//! ```
//!
//! It loads the library the way `kilnd` does (same ABI checks), opens an
//! instance with `--options` (the `options:` of the pool, as JSON; `{}` if
//! not given), runs every scenario and prints one line per scenario and a
//! summary. `--access blocks` (the default) reaches file data through
//! block I/O and debugfs, for plugins whose device path is not raw ext4;
//! `--access mount` mounts the device path and needs root.
//!
//! Exit codes: 0 every scenario passed or was skipped, 1 a scenario
//! failed, 2 bad arguments or the library could not be loaded or opened.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kiln_core::{SizeMib, VolumeStore};
use kiln_plugin_loader::{load, PluginStore};
use kiln_tests::conformance::{run, Access, Target};

const USAGE: &str = "usage: kiln-conformance --library PATH [--options JSON] \
                     [--access blocks|mount] [--size-mib N]";

struct Args {
    library: PathBuf,
    options: serde_json::Value,
    access: Access,
    size: Option<SizeMib>,
}

fn parse_args() -> Result<Args, String> {
    let mut library = None;
    let mut options = serde_json::json!({});
    let mut access = Access::Blocks;
    let mut size = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--library" => library = Some(PathBuf::from(value()?)),
            "--options" => {
                let text = value()?;
                options = serde_json::from_str(&text)
                    .map_err(|e| format!("--options is not JSON ({e}): {text}"))?;
            }
            "--access" => {
                access = match value()?.as_str() {
                    "blocks" => Access::Blocks,
                    "mount" => Access::Mount,
                    other => return Err(format!("--access {other:?}: expected blocks or mount")),
                }
            }
            "--size-mib" => {
                let n = value()?;
                let n: u64 = n.parse().map_err(|e| format!("--size-mib {n:?}: {e}"))?;
                size = Some(SizeMib::new_for("--size-mib", n).map_err(|e| e.to_string())?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let library = library.ok_or("--library is required")?;
    Ok(Args {
        library,
        options,
        access,
        size,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kiln-conformance: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kiln-conformance: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(conform(args))
}

async fn conform(args: Args) -> ExitCode {
    let plugin = match load(&args.library) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kiln-conformance: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    let (abi_version, abi_age) = plugin.abi();
    println!(
        "plugin {} {} from {} (ABI version {abi_version}, age {abi_age})",
        plugin.name(),
        plugin.version(),
        args.library.display()
    );
    let label = format!("plugin-{}", plugin.name());
    let store = match PluginStore::open_with(plugin, args.options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-conformance: cannot open the plugin: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    println!("capabilities: {:?}", store.capabilities());
    let mut target = Target::new(label, Arc::new(store), args.access);
    if let Some(size) = args.size {
        target = target.with_volume_size(size);
    }
    let report = run(target).await;
    report.print();
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
