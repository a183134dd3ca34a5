//! Scheduled backups: one task per `backup.schedules` entry, each backing
//! up one owner's volume on its cron schedule and then keeping only the
//! newest `keep` backups of that volume.
//!
//! A schedule acts as its owner (never as an admin), so it can only ever
//! see and touch that owner's volume and that owner's backups: another
//! owner's volume of the same name is out of its reach. Every run is a
//! job ([`crate::jobs`]); a run refused before it starts (the volume is
//! busy or gone) is recorded as a failed job and logged, and a run that
//! starts late (the daemon was stopped or starved at its time) is logged
//! as missed. `GET /v1/backups/schedules` shows each schedule's next and
//! last run.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use kiln_core::backup::{BackupEngine, BackupInfo};
use kiln_core::config::ScheduleConfig;
use kiln_core::service::{Actor, VolumeService};
use kiln_core::{Error, JobId, Owner, Result, VolumeName};
use serde::Serialize;
use time::OffsetDateTime;

use crate::app::AppState;
use crate::jobs::{JobKind, JobState, Jobs};

/// How late a run may start before it counts as missed.
const LATE: Duration = Duration::from_secs(60);

/// A schedule as `GET /v1/backups/schedules` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// The volume's owner.
    pub owner: Owner,
    /// The volume.
    pub volume: VolumeName,
    /// The cron expression as configured.
    pub cron: String,
    /// How many backups are kept.
    pub keep: usize,
    /// When it runs next.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run: Option<OffsetDateTime>,
    /// The last run, if there was one.
    pub last_run: Option<LastRun>,
}

/// How the last run of a schedule went.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Its job.
    pub job: JobId,
    /// The job's state when it was recorded (`running` until it ends).
    pub state: JobState,
    /// Why it failed, or that it started late.
    pub error: Option<String>,
}

/// The schedules of the daemon and how they ran.
#[derive(Default)]
pub struct Schedules {
    views: Mutex<Vec<ScheduleView>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one field update.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Schedules {
    /// Every schedule, for an admin; the actor's own otherwise.
    pub fn list(&self, a: &Actor) -> Vec<ScheduleView> {
        lock(&self.views)
            .iter()
            .filter(|v| a.admin || v.owner == a.owner)
            .cloned()
            .collect()
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut ScheduleView)) {
        if let Some(v) = lock(&self.views).get_mut(i) {
            f(v);
        }
    }
}

/// Parses a cron expression with seconds (6 or 7 fields) or without (5).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| Error::Config {
        key: "backup.schedules".into(),
        reason: format!("{expr:?} is not a cron expression: {e}"),
    })
}

fn to_time(t: chrono::DateTime<Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).ok()
}

/// Starts one task per configured schedule. Fails (before starting any)
/// if an expression does not parse.
pub fn start(state: &AppState) -> Result<()> {
    let Some(engine) = state.backup.clone() else {
        return Ok(());
    };
    let Some(config) = state.service.config().backup.as_ref() else {
        return Ok(());
    };
    let mut parsed = Vec::new();
    for s in &config.schedules {
        parsed.push((s.clone(), parse_cron(&s.cron)?));
    }
    {
        let mut views = lock(&state.schedules.views);
        views.clear();
        for (s, c) in &parsed {
            views.push(ScheduleView {
                owner: s.owner.clone(),
                volume: s.volume.clone(),
                cron: s.cron.clone(),
                keep: s.keep,
                next_run: c.upcoming(Utc).next().and_then(to_time),
                last_run: None,
            });
        }
    }
    for (i, (s, c)) in parsed.into_iter().enumerate() {
        tracing::info!(owner = %s.owner, volume = %s.volume, cron = %s.cron, keep = s.keep,
            "backup schedule started");
        let task = Task {
            index: i,
            config: s,
            cron: c,
            service: state.service.clone(),
            engine: engine.clone(),
            jobs: state.jobs.clone(),
            schedules: state.schedules.clone(),
        };
        tokio::spawn(task.run());
    }
    Ok(())
}

struct Task {
    index: usize,
    config: ScheduleConfig,
    cron: cron::Schedule,
    service: Arc<VolumeService>,
    engine: Arc<BackupEngine>,
    jobs: Arc<Jobs>,
    schedules: Arc<Schedules>,
}

impl Task {
    async fn run(self) {
        loop {
            let Some(next) = self.cron.upcoming(Utc).next() else {
                tracing::info!(volume = %self.config.volume, "backup schedule has no more runs");
                return;
            };
            self.schedules
                .update(self.index, |v| v.next_run = to_time(next));
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;

            let late = (Utc::now() - next).to_std().unwrap_or_default();
            let late_note = (late > LATE).then(|| {
                tracing::warn!(owner = %self.config.owner, volume = %self.config.volume,
                    due = %next, late_secs = late.as_secs(), "scheduled backup missed its time; running now");
                format!("started {}s after its scheduled time {next}", late.as_secs())
            });
            self.run_once(late_note).await;
        }
    }

    async fn run_once(&self, late_note: Option<String>) {
        let actor = Actor {
            owner: self.config.owner.clone(),
            admin: false,
        };
        let volume = self.config.volume.clone();
        let at = OffsetDateTime::now_utc();
        let prepared = match self.service.prepare_backup(&actor, &volume).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(owner = %actor.owner, volume = %volume, error = %e.chain(),
                    "scheduled backup could not start");
                let job = self
                    .jobs
                    .record_failed(JobKind::Backup, &actor.owner, Some(volume), &e);
                self.schedules.update(self.index, |v| {
                    v.last_run = Some(LastRun {
                        at,
                        job: job.id,
                        state: JobState::Failed,
                        error: job.error,
                    })
                });
                return;
            }
        };

        let (service, engine, keep) = (self.service.clone(), self.engine.clone(), self.config.keep);
        let owner = actor.owner.clone();
        let job = self.jobs.spawn(
            JobKind::Backup,
            &owner,
            Some(volume.clone()),
            move |progress| async move {
                let info = service.run_backup(prepared, &engine, &progress).await?;
                prune(&service, &engine, &actor, &info, keep).await;
                Ok(info)
            },
        );
        self.schedules.update(self.index, |v| {
            v.last_run = Some(LastRun {
                at,
                job: job.id.clone(),
                state: JobState::Running,
                error: late_note.clone(),
            })
        });

        // Follow the job to record how it ended.
        let actor = Actor {
            owner: self.config.owner.clone(),
            admin: false,
        };
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.jobs.get(&actor, &job.id) {
                Ok(v) if v.state == JobState::Running => continue,
                Ok(v) => {
                    self.schedules.update(self.index, |s| {
                        if let Some(last) = &mut s.last_run {
                            last.state = v.state;
                            last.error = v.error.clone().or(late_note.clone());
                        }
                    });
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// Keeps the newest `keep` backups of the volume of `info` (this owner's
/// only), deleting the others; failures are logged and left for the next
/// run.
async fn prune(
    service: &VolumeService,
    engine: &BackupEngine,
    actor: &Actor,
    info: &BackupInfo,
    keep: usize,
) {
    let backups = match service.list_backups(actor, &info.volume, engine).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(volume = %info.volume, error = %e.chain(),
                "cannot list backups for retention; none deleted");
            return;
        }
    };
    for old in backups.iter().skip(keep.max(1)) {
        match service
            .delete_backup(actor, &old.volume, &old.id, engine)
            .await
        {
            Ok(()) => tracing::info!(volume = %old.volume, backup = %old.id,
                "backup removed by retention"),
            Err(e) => tracing::warn!(volume = %old.volume, backup = %old.id, error = %e.chain(),
                "cannot remove a backup for retention; retried at the next run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_with_and_without_seconds() {
        assert!(parse_cron("0 3 * * *").is_ok());
        assert!(parse_cron("0 0 3 * * *").is_ok());
        let err = parse_cron("every day").expect_err("not cron");
        assert!(err.to_string().contains("every day"), "{err}");
    }
}
