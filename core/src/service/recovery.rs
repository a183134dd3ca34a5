//! Start-up recovery: finish or undo what a crash interrupted, then
//! reconcile every pool with the catalog.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use tracing::{info, warn};

use super::pools::known_ids;
use super::{RecoveryReport, VolumeService};
use crate::catalog::{Operation, OperationState, Step};
use crate::error::{Error, ErrorKind, Result};
use crate::model::VolumeStatus;
use crate::store::VolumeStore;
use crate::types::{PoolName, VolumeId};

/// How long ended journal entries are kept (for an operator reading the
/// catalog after an incident); older ones are dropped at start-up.
const JOURNAL_KEEP: time::Duration = time::Duration::days(7);

/// What recovery did with one interrupted operation.
enum Outcome {
    Finished,
    Undone,
}

impl VolumeService {
    /// Runs recovery; see [`RecoveryReport`] for what it reports.
    ///
    /// An interrupted operation whose pool is gone from the config, or
    /// whose backend step fails again, is left in the journal (and
    /// logged) for the next start.
    pub(super) async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let running = self.catalog.read(|tx| tx.running_operations())?;
        for op in running {
            let what = format!(
                "{} of volume {} ({})",
                op.step.kind(),
                op.step.target(),
                op.volume
            );
            let Ok(store) = self.store(op.step.pool()) else {
                warn!(operation = %what, pool = %op.step.pool(),
                    "interrupted operation in a pool that is not configured; left for later");
                continue;
            };
            match self.recover_one(&op, store.as_ref()).await {
                Ok(Outcome::Finished) => {
                    warn!(operation = %what, "finished an interrupted operation");
                    report.finished.push(what);
                }
                Ok(Outcome::Undone) => {
                    warn!(operation = %what, "undid an interrupted operation");
                    report.undone.push(what);
                }
                Err(e) => {
                    warn!(operation = %what, error = %e.chain(),
                        "cannot recover an interrupted operation; left for the next start");
                    let reason = format!(
                        "interrupted {} could not be recovered: {}",
                        op.step.kind(),
                        e.chain()
                    );
                    self.catalog.write(|tx| {
                        tx.set_volume_status(&op.volume, VolumeStatus::Error, Some(&reason))
                    })?;
                }
            }
        }

        for (pool, store) in &self.pools {
            self.reconcile(pool, store.as_ref(), &mut report).await?;
        }

        let horizon = OffsetDateTime::now_utc() - JOURNAL_KEEP;
        let pruned = self.catalog.write(|tx| tx.prune_operations(horizon))?;
        info!(
            finished = report.finished.len(),
            undone = report.undone.len(),
            unmanaged = report.unmanaged.len(),
            missing = report.missing.len(),
            pruned_journal_entries = pruned,
            "recovery finished"
        );
        Ok(report)
    }

    async fn recover_one(&self, op: &Operation, store: &dyn VolumeStore) -> Result<Outcome> {
        let delete_backend = |id: VolumeId| async move {
            match store.delete(&id).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::Pool {
                    pool: op.step.pool().to_string(),
                    operation: "delete",
                    source: e,
                }),
                _ => Ok(()),
            }
        };
        match &op.step {
            Step::Create { .. } | Step::Clone { .. } => {
                delete_backend(op.volume.clone()).await?;
                self.undo(op, |tx| tx.delete_volume(&op.volume).map(drop))?;
                Ok(Outcome::Undone)
            }
            Step::Delete { .. } => {
                delete_backend(op.volume.clone()).await?;
                self.catalog.write(|tx| {
                    tx.delete_volume(&op.volume)?;
                    tx.end_operation(&op.id, OperationState::Done)
                })?;
                Ok(Outcome::Finished)
            }
            Step::Resize {
                old_size_mib,
                new_size_mib,
                ..
            } => {
                let listed = store.list().await.map_err(|source| Error::Pool {
                    pool: op.step.pool().to_string(),
                    operation: "list",
                    source,
                })?;
                let grown = listed
                    .iter()
                    .any(|v| v.id == op.volume && v.size_bytes >= new_size_mib.bytes());
                let (size, state, outcome) = if grown {
                    (*new_size_mib, OperationState::Done, Outcome::Finished)
                } else {
                    (*old_size_mib, OperationState::Undone, Outcome::Undone)
                };
                self.catalog.write(|tx| {
                    tx.set_volume_size(&op.volume, size)?;
                    tx.set_volume_status(&op.volume, VolumeStatus::Ready, None)?;
                    tx.end_operation(&op.id, state)
                })?;
                Ok(outcome)
            }
        }
    }

    /// Compares a pool's backend volumes with the catalog: unknown backend
    /// volumes are reported (never deleted), catalog volumes the backend
    /// lacks are marked `error` (never dropped).
    async fn reconcile(
        &self,
        pool: &PoolName,
        store: &dyn VolumeStore,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let stored = match store.list().await {
            Ok(list) => list,
            Err(source) => {
                let e = Error::Pool {
                    pool: pool.to_string(),
                    operation: "list",
                    source,
                };
                warn!(pool = %pool, error = %e.chain(), "cannot list pool; not reconciled");
                return Ok(());
            }
        };
        let stored: BTreeSet<VolumeId> = stored.into_iter().map(|v| v.id).collect();
        let (known, known_ids) = self
            .catalog
            .read(|tx| Ok((tx.volumes_in_pool(pool)?, known_ids(tx, pool)?)))?;

        for id in stored.iter().filter(|id| !known_ids.contains(id)) {
            warn!(pool = %pool, volume_id = %id,
                "backend volume has no catalog entry; left in place as unmanaged");
            report.unmanaged.push((pool.clone(), id.clone()));
        }

        let reason = missing_reason(pool);
        for v in known.iter().filter(|v| !stored.contains(&v.id)) {
            warn!(pool = %pool, volume = %v.name, owner = %v.owner, volume_id = %v.id,
                "catalog volume missing from its pool; marked error");
            self.catalog
                .write(|tx| tx.set_volume_status(&v.id, VolumeStatus::Error, Some(&reason)))?;
            report.missing.push((v.owner.clone(), v.name.clone()));
        }

        // A volume marked missing at an earlier start whose backend volume
        // is there again (the pool's disk was not mounted then, say) is
        // usable again; only the error this check set is cleared.
        let back = known.iter().filter(|v| {
            v.status == VolumeStatus::Error
                && v.error.as_deref() == Some(reason.as_str())
                && stored.contains(&v.id)
        });
        for v in back {
            warn!(pool = %pool, volume = %v.name, owner = %v.owner, volume_id = %v.id,
                "catalog volume missing at an earlier start is in its pool again; marked ready");
            self.catalog
                .write(|tx| tx.set_volume_status(&v.id, VolumeStatus::Ready, None))?;
        }
        Ok(())
    }
}

/// The error of a catalog volume whose backend volume is not in `pool`.
fn missing_reason(pool: &PoolName) -> String {
    format!("backend volume missing from pool {pool:?}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::memory::MemoryStore;
    use crate::service::{Actor, CreateVolume};
    use crate::store::Contents;
    use crate::types::{Owner, SizeMib, VolumeName};

    async fn open(config: &Config, store: &MemoryStore) -> Arc<VolumeService> {
        let mut pools: BTreeMap<PoolName, Arc<dyn VolumeStore>> = BTreeMap::new();
        pools.insert(config.default_pool.clone(), Arc::new(store.clone()));
        VolumeService::open(config, pools)
            .await
            .expect("service opens")
    }

    #[tokio::test]
    async fn a_volume_missing_at_one_start_and_back_at_the_next_is_ready_again() {
        let dir = tempfile::Builder::new()
            .prefix("kiln-recovery-test-")
            .tempdir()
            .expect("temp dir");
        let config = Config::embedded(dir.path());
        let size = SizeMib::new(10).expect("size");
        let store = MemoryStore::new(SizeMib::new(1000).expect("pool size"));
        let a = Actor {
            owner: Owner::new("a").expect("owner"),
            admin: false,
        };
        let name = VolumeName::new("data").expect("name");
        let service = open(&config, &store).await;
        let create = CreateVolume {
            name: name.clone(),
            size,
            pool: None,
        };
        let v = service.create_volume(&a, create).await.expect("create");
        drop(service);

        // The pool's medium is away at one start...
        store.delete(&v.id).await.expect("taken away");
        let service = open(&config, &store).await;
        let away = service.get_volume(&a, &name).await.expect("kept");
        assert_eq!(away.status, VolumeStatus::Error);
        drop(service);

        // ...and back at the next.
        store
            .create(&v.id, size, Contents::Ext4)
            .await
            .expect("brought back");
        let service = open(&config, &store).await;
        let back = service.get_volume(&a, &name).await.expect("kept");
        assert_eq!(back.status, VolumeStatus::Ready, "{back:?}");
        assert_eq!(back.error, None);
        assert!(service.recovery_report().missing.is_empty());
    }

    #[tokio::test]
    async fn a_volume_in_error_for_another_reason_stays_in_error() {
        let dir = tempfile::Builder::new()
            .prefix("kiln-recovery-test-")
            .tempdir()
            .expect("temp dir");
        let config = Config::embedded(dir.path());
        let store = MemoryStore::new(SizeMib::new(1000).expect("pool size"));
        let a = Actor {
            owner: Owner::new("a").expect("owner"),
            admin: false,
        };
        let name = VolumeName::new("data").expect("name");
        let service = open(&config, &store).await;
        let create = CreateVolume {
            name: name.clone(),
            size: SizeMib::new(10).expect("size"),
            pool: None,
        };
        let v = service.create_volume(&a, create).await.expect("create");
        service
            .catalog()
            .write(|tx| tx.set_volume_status(&v.id, VolumeStatus::Error, Some("rollback failed")))
            .expect("mark error");
        drop(service);

        let service = open(&config, &store).await;
        let still = service.get_volume(&a, &name).await.expect("kept");
        assert_eq!(still.status, VolumeStatus::Error);
        assert_eq!(still.error.as_deref(), Some("rollback failed"));
    }
}
