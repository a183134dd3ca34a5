//! The listeners: the unix socket (mode 0600) and the optional TCP
//! address, both serving the same router, each recording its
//! [`Transport`] in every request's extensions.
//!
//! A socket file left by a daemon that crashed is replaced; a socket a
//! live daemon answers on is refused, so two daemons never share one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::{Extension, Router};
use kiln_core::config::Listen;
use kiln_core::{Error, Result};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::auth::Transport;

/// The bound listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    unix: UnixListener,
    socket: PathBuf,
    tcp: Option<TcpListener>,
}

fn io_err(operation: &'static str, path: impl std::fmt::Display, source: io::Error) -> Error {
    Error::Io {
        operation,
        path: path.to_string(),
        source,
    }
}

impl Listeners {
    /// Binds the socket (replacing a stale one) and the TCP address.
    pub async fn bind(listen: &Listen) -> Result<Self> {
        let socket = listen.socket.clone();
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| io_err("create socket folder", parent.display(), e))?;
        }
        remove_stale_socket(&socket)?;
        // The socket is created with mode 0600 (a umask of 0177 around
        // the bind), so no other user can connect even for a moment.
        // SAFETY: umask only swaps the process's file mode mask; it cannot
        // fail and touches no memory. Nothing else creates files while
        // the daemon is starting.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&socket);
        // SAFETY: as above, restoring the mask read by the first call.
        unsafe { libc::umask(old_mask) };
        let unix = bound.map_err(|e| io_err("bind", socket.display(), e))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("chmod 0600", socket.display(), e))?;

        let tcp = match listen.tcp {
            None => None,
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| io_err("bind", addr, e))?,
            ),
        };
        Ok(Self { unix, socket, tcp })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP address actually bound (the port is known even for `:0`).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves `router` until `shutdown` completes, then lets in-flight
    /// requests finish for at most `grace`, and removes the socket file.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let socket = self.socket.clone();
        let unix_router = router.clone().layer(Extension(Transport::Unix));
        let unix =
            axum::serve(self.unix, unix_router).with_graceful_shutdown(stopped(stop_rx.clone()));
        let tcp = self.tcp.map(|listener| {
            let tcp_router = router.layer(Extension(Transport::Tcp));
            axum::serve(listener, tcp_router).with_graceful_shutdown(stopped(stop_rx.clone()))
        });

        let servers = async move {
            let unix = async { unix.await.map_err(|e| io_err("serve", socket.display(), e)) };
            let tcp = async {
                match tcp {
                    Some(tcp) => tcp.await.map_err(|e| io_err("serve", "tcp", e)),
                    None => Ok(()),
                }
            };
            tokio::try_join!(unix, tcp).map(|_| ())
        };
        let bounded_grace = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            }
        };
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            let _ = stop_tx.send(true);
        });

        let result = tokio::select! {
            r = servers => r,
            () = bounded_grace => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "requests still in flight after the grace period; exiting without them"
                );
                Ok(())
            }
        };
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), error = %e, "could not remove the socket file");
        }
        result
    }
}

/// Removes a socket file nobody answers on; refuses one a live daemon
/// answers on, and anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect socket", path.display(), e)),
    };
    if !meta.file_type().is_socket() {
        return Err(io_err(
            "bind",
            path.display(),
            io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket"),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io_err(
            "bind",
            path.display(),
            io::Error::new(
                io::ErrorKind::AddrInUse,
                "another kilnd is listening on this socket",
            ),
        ));
    }
    tracing::warn!(socket = %path.display(), "replacing a stale socket file");
    std::fs::remove_file(path).map_err(|e| io_err("remove stale socket", path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("kilnd-listen-{}-", std::process::id()))
            .tempdir()
            .expect("temporary folder")
    }

    #[test]
    fn a_stale_socket_is_removed_and_a_live_one_refused() {
        let dir = tempdir();
        let path = dir.path().join("kiln.sock");
        remove_stale_socket(&path).expect("no file is fine");

        let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let err = remove_stale_socket(&path).expect_err("a live socket");
        assert!(err.to_string().contains("another kilnd"), "{err}");
        assert!(path.exists());

        drop(live);
        remove_stale_socket(&path).expect("a stale socket is replaced");
        assert!(!path.exists());
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_left_alone() {
        let dir = tempdir();
        let path = dir.path().join("kiln.sock");
        std::fs::write(&path, "not a socket").expect("write");
        let err = remove_stale_socket(&path).expect_err("a regular file");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("not a socket")
        );
    }
}
