//! Lock objects: backups hold shared locks, gc an exclusive one.
//!
//! Each side first writes its own lock, then lists the others' (the
//! two-phase check; see `docs/backup-format.md` for why at least one side
//! always sees the other). A backup that sees a live gc lock keeps its own
//! lock and waits for the gc to finish; a gc that sees a live backup lock
//! takes its own away and waits for the backups to finish, so the two
//! never wait on each other.
//!
//! Locks are refreshed every [`REFRESH`]; one not refreshed for [`STALE`]
//! (by the store's clock: ages are measured against the store's own time
//! stamp of the lock just written) belongs to a process that died and is
//! ignored. A holder that could not refresh for [`STALE`] minus a margin
//! considers its lock lost and stops before doing anything that relies
//! on it. A waiting side says what it waits for, with the locks' ages, in
//! its [`Progress`] (a job's `waiting_for`) and once in the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::keys;
use super::progress::Progress;
use crate::error::{Error, Result};
use crate::target::{BackupTarget, ObjectMeta};

/// How often a held lock is rewritten.
pub const REFRESH: Duration = Duration::from_secs(60);
/// How old a lock may be before it counts as abandoned.
pub const STALE: Duration = Duration::from_secs(15 * 60);
/// How often a waiting side looks again.
const POLL: Duration = Duration::from_millis(500);

/// A lock object this process holds; released on drop.
pub(crate) struct HeldLock {
    target: Arc<dyn BackupTarget>,
    key: String,
    born: Instant,
    /// Milliseconds after `born` of the last successful write.
    last_written_ms: Arc<AtomicU64>,
    heartbeat: Option<JoinHandle<()>>,
    released: bool,
}

fn target_err(target: &dyn BackupTarget, operation: String, source: crate::BackendError) -> Error {
    Error::Target {
        target: target.describe(),
        operation,
        source,
    }
}

/// The store's "now", read from the time stamp of an object just written.
async fn store_now(target: &dyn BackupTarget, key: &str) -> Result<OffsetDateTime> {
    let meta = target
        .head(key)
        .await
        .map_err(|e| target_err(target, format!("head {key}"), e))?;
    Ok(meta
        .and_then(|m| m.last_modified)
        .unwrap_or_else(OffsetDateTime::now_utc))
}

fn is_live(lock: &ObjectMeta, now: OffsetDateTime) -> bool {
    match lock.last_modified {
        Some(t) => now - t < STALE,
        // A store that gives no time stamp: never assume the holder died.
        None => true,
    }
}

/// Another holder's live lock: its key, and how long ago it was last
/// written (by the store's clock; unknown where the store gives no time).
struct LiveLock {
    key: String,
    age: Option<Duration>,
}

impl LiveLock {
    fn age_secs(&self) -> Option<u64> {
        self.age.map(|a| a.as_secs())
    }
}

async fn live_locks(
    target: &dyn BackupTarget,
    prefix: &str,
    now: OffsetDateTime,
) -> Result<Vec<LiveLock>> {
    let locks = target
        .list(prefix)
        .await
        .map_err(|e| target_err(target, format!("list {prefix}"), e))?;
    Ok(locks
        .into_iter()
        .filter(|l| is_live(l, now))
        .map(|l| LiveLock {
            age: l.last_modified.map(|t| (now - t).unsigned_abs()),
            key: l.key,
        })
        .collect())
}

/// What a waiting side shows (a job's `waiting_for`): `what` to finish,
/// the locks with their ages, and when a crashed holder's lock stops
/// counting.
fn waiting_message(what: &str, locks: &[LiveLock]) -> String {
    let locks: Vec<String> = locks
        .iter()
        .map(|l| match l.age_secs() {
            Some(secs) => format!("{} (last refreshed {secs} s ago)", l.key),
            None => format!("{} (the store gives no age)", l.key),
        })
        .collect();
    format!(
        "{what} to finish: {}; a lock not refreshed for {} s is taken as left by a crashed \
         daemon and ignored",
        locks.join(", "),
        STALE.as_secs()
    )
}

impl HeldLock {
    async fn write(target: Arc<dyn BackupTarget>, key: String) -> Result<Self> {
        let body = Bytes::from(format!(
            "{{\"pid\":{},\"written_at\":\"{}\"}}",
            std::process::id(),
            OffsetDateTime::now_utc()
        ));
        target
            .put(&key, body.clone())
            .await
            .map_err(|e| target_err(&*target, format!("put {key}"), e))?;
        let born = Instant::now();
        let last_written_ms = Arc::new(AtomicU64::new(0));
        let heartbeat = {
            let (target, key, last) = (target.clone(), key.clone(), last_written_ms.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH).await;
                    match target.put(&key, body.clone()).await {
                        Ok(()) => last.store(born.elapsed().as_millis() as u64, Ordering::Relaxed),
                        Err(e) => tracing::warn!(lock = %key, error = %e,
                            "could not refresh a backup target lock; retrying"),
                    }
                }
            })
        };
        Ok(Self {
            target,
            key,
            born,
            last_written_ms,
            heartbeat: Some(heartbeat),
            released: false,
        })
    }

    /// Takes a backup's shared lock, waiting while a gc runs.
    pub(crate) async fn backup(
        target: Arc<dyn BackupTarget>,
        id: &crate::types::BackupId,
        progress: &Progress,
    ) -> Result<Self> {
        let lock = Self::write(target.clone(), keys::backup_lock(id)).await?;
        let mut logged = false;
        loop {
            let now = store_now(&*target, &lock.key).await?;
            let gcs = live_locks(&*target, keys::GC_LOCK, now).await?;
            if gcs.is_empty() {
                progress.set_waiting_for(None);
                return Ok(lock);
            }
            progress.set_waiting_for(Some(waiting_message("a running gc", &gcs)));
            if !logged {
                let keys: Vec<&str> = gcs.iter().map(|l| l.key.as_str()).collect();
                let ages: Vec<Option<u64>> = gcs.iter().map(LiveLock::age_secs).collect();
                tracing::info!(backup = %id, locks = ?keys, age_secs = ?ages,
                    stale_after_secs = STALE.as_secs(), "waiting for a running gc to finish");
                logged = true;
            }
            if progress.is_cancelled() {
                progress.set_waiting_for(None);
                lock.release().await;
                return Err(Error::Cancelled {
                    operation: format!("backup {id}"),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Takes gc's exclusive lock, waiting (without holding it) while
    /// backups run.
    pub(crate) async fn gc(target: Arc<dyn BackupTarget>, progress: &Progress) -> Result<Self> {
        let key = format!("{}{}", keys::GC_LOCK, uuid::Uuid::new_v4().simple());
        let mut logged = false;
        loop {
            let lock = Self::write(target.clone(), key.clone()).await?;
            let now = store_now(&*target, &key).await?;
            let backups = live_locks(&*target, keys::BACKUP_LOCK, now).await?;
            if backups.is_empty() {
                progress.set_waiting_for(None);
                return Ok(lock);
            }
            lock.release().await;
            progress.set_waiting_for(Some(waiting_message("running backups", &backups)));
            if !logged {
                let keys: Vec<&str> = backups.iter().map(|l| l.key.as_str()).collect();
                let ages: Vec<Option<u64>> = backups.iter().map(LiveLock::age_secs).collect();
                tracing::info!(locks = ?keys, age_secs = ?ages,
                    stale_after_secs = STALE.as_secs(), "gc waiting for running backups to finish");
                logged = true;
            }
            if progress.is_cancelled() {
                progress.set_waiting_for(None);
                return Err(Error::Cancelled {
                    operation: "gc".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the lock is surely still visible to others: it was written
    /// less than [`STALE`] (minus a safety margin) ago.
    pub(crate) fn still_held(&self) -> bool {
        let last = Duration::from_millis(self.last_written_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last) < STALE - 2 * REFRESH
    }

    /// The store's time now, as seen on this lock's latest write.
    pub(crate) async fn store_now(&self) -> Result<OffsetDateTime> {
        store_now(&*self.target, &self.key).await
    }

    /// Removes the lock object.
    pub(crate) async fn release(mut self) {
        self.released = true;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if let Err(e) = self.target.delete(&self.key).await {
            tracing::warn!(lock = %self.key, error = %e,
                "could not remove a backup target lock; it expires on its own");
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.released {
            return;
        }
        // Dropped without release (the operation's future was dropped):
        // remove the lock in the background where a runtime is at hand.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (target, key) = (self.target.clone(), std::mem::take(&mut self.key));
            rt.spawn(async move {
                let _ = target.delete(&key).await;
            });
        }
    }
}
