//! `kilnd`: the kiln daemon.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or Ctrl-C), 2 for a bad
//! configuration or command line (the key and the reason are printed),
//! 1 for any other failure to start or serve.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kiln_core::config::Config;
use kiln_core::service::VolumeService;
use tracing_subscriber::EnvFilter;

/// How long in-flight requests may run after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// kilnd: keeps persistent ext4 volumes and attaches them to sandboxes.
#[derive(Debug, Parser)]
#[command(name = "kilnd", version)]
struct Args {
    /// The config file (YAML); see config.example.yaml.
    #[arg(long, short = 'c', env = "KILN_CONFIG")]
    config: Option<PathBuf>,

    /// Without --config: serve the embedded default (one ext4-file pool
    /// and the socket DIR/kiln.sock) from this folder.
    #[arg(long, default_value = "./kiln-data", conflicts_with = "config")]
    data_dir: PathBuf,

    /// The log filter (`info`, `debug`, `kilnd=debug,kiln_core=info`);
    /// RUST_LOG is used when this is not given.
    #[arg(long)]
    log_level: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_level.as_deref());

    let config = match load_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kilnd: {}", e.chain());
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kilnd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let config_error = e
                .downcast_ref::<kiln_core::Error>()
                .is_some_and(|e| matches!(e, kiln_core::Error::Config { .. }));
            eprintln!("kilnd: {}", one_line(&e));
            if config_error {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `e` with its causes, `: `-separated, each said once: many errors
/// already end with their source's text (`bind ADDR: Address already in
/// use`), which anyhow's `{:#}` would append a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_tracing(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(args: &Args) -> kiln_core::Result<Config> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let dir = absolute(&args.data_dir)?;
            Config::embedded(&dir)
        }
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|source| kiln_core::Error::Io {
        operation: "create data_dir",
        path: config.data_dir.display().to_string(),
        source,
    })?;
    Ok(config)
}

fn absolute(path: &Path) -> kiln_core::Result<PathBuf> {
    std::path::absolute(path).map_err(|source| kiln_core::Error::Io {
        operation: "resolve",
        path: path.display().to_string(),
        source,
    })
}

async fn run(config: Config) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config.data_dir)?;

    let pools = kilnd::open_pools(&config).await?;
    let service = VolumeService::open(&config, pools)
        .await
        .context("opening the volume service")?;
    // Recovery has run and logged what it did (VolumeService::open).

    let listeners = kilnd::Listeners::bind(&config.listen).await?;
    tracing::info!(
        socket = %listeners.socket().display(),
        tcp = ?listeners.tcp_addr(),
        data_dir = %config.data_dir.display(),
        "listening"
    );
    let state = kilnd::AppState::new(service)
        .open_backups()
        .context("opening the backup target")?;
    kilnd::scheduler::start(&state).context("starting the backup schedules")?;
    let app = kilnd::router(state);
    listeners
        .serve(app, shutdown_signal(), SHUTDOWN_GRACE)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Takes an exclusive lock on `DATA_DIR/kilnd.lock` for the daemon's
/// life, so a second daemon on the same data directory (and catalog)
/// refuses to start.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("kilnd.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a file descriptor this function owns (through
    // `file`) for the whole call; it touches no memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        anyhow::bail!(
            "{}: another kilnd uses this data directory ({err})",
            path.display()
        );
    }
    Ok(file)
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "signal received"),
    }
}
