//! The jobs registry: long operations (backup, restore, gc, verify) run
//! as tokio tasks and are watched through `GET /v1/jobs/{id}`.
//!
//! A job carries its [`Progress`] (bytes done and total, what it waits
//! for, and the cancellation flag the engine checks between blocks), its
//! state, and when it ends its result or error. Jobs belong to an owner: only that
//! owner, or an admin, sees or cancels one.
//!
//! # Limitations
//!
//! The registry is in memory: jobs are forgotten when the daemon stops
//! (a restore interrupted that way is undone at start-up from the
//! journal), and only the newest [`KEEP_FINISHED`] finished jobs are kept.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use kiln_core::backup::Progress;
use kiln_core::service::Actor;
use kiln_core::{Error, ErrorKind, JobId, Owner, VolumeName};
use serde::Serialize;
use time::OffsetDateTime;

/// How many finished jobs stay visible.
pub const KEEP_FINISHED: usize = 1000;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A volume's backup.
    Backup,
    /// A restore.
    Restore,
    /// Garbage collection of the backup target.
    Gc,
    /// A backup's verification.
    Verify,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Still working.
    Running,
    /// Done; `result` holds what it made.
    Succeeded,
    /// Failed; `error` says why.
    Failed,
    /// Stopped by a cancel.
    Cancelled,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The job's id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// The volume concerned, if any.
    pub volume: Option<VolumeName>,
    /// Whose job it is.
    pub owner: Owner,
    /// Where it is.
    pub state: JobState,
    /// Bytes processed so far.
    pub bytes_done: u64,
    /// Bytes it will process (0 until known).
    pub bytes_total: u64,
    /// What it waits for before it can go on (another operation's lock
    /// in the backup target, with its age), while it waits.
    pub waiting_for: Option<String>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it made (a backup, a volume, a report).
    pub result: Option<serde_json::Value>,
}

struct Job {
    view: Mutex<JobView>,
    progress: Progress,
}

impl Job {
    fn view(&self) -> JobView {
        let mut v = lock(&self.view).clone();
        v.bytes_done = self.progress.bytes_done();
        v.bytes_total = self.progress.bytes_total();
        v.waiting_for = self.progress.waiting_for();
        v
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a plain field update; a panic cannot leave
    // the data half changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registry; shared by the routes and the scheduler.
#[derive(Default)]
pub struct Jobs {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    jobs: HashMap<JobId, Arc<Job>>,
    finished: VecDeque<JobId>,
}

/// The message a job shows for an error: the whole chain for errors a
/// client may see, a pointer to the log for internal ones (logged here).
fn job_error(id: &JobId, kind: JobKind, e: &Error) -> String {
    match e.kind() {
        ErrorKind::Internal => {
            tracing::error!(job = %id, kind = ?kind, error = %e.chain(), "job failed");
            format!("internal error; the daemon log has the details under job {id}")
        }
        _ => {
            tracing::warn!(job = %id, kind = ?kind, error = %e.chain(), "job failed");
            e.chain()
        }
    }
}

impl Jobs {
    /// Starts `work` as a job of `owner` and returns it as it is now.
    pub fn spawn<F, T>(
        self: &Arc<Self>,
        kind: JobKind,
        owner: &Owner,
        volume: Option<VolumeName>,
        work: impl FnOnce(Progress) -> F,
    ) -> JobView
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Serialize,
    {
        let id = JobId::generate();
        let progress = Progress::new();
        let job = Arc::new(Job {
            view: Mutex::new(JobView {
                id: id.clone(),
                kind,
                volume,
                owner: owner.clone(),
                state: JobState::Running,
                bytes_done: 0,
                bytes_total: 0,
                waiting_for: None,
                started_at: OffsetDateTime::now_utc(),
                finished_at: None,
                error: None,
                result: None,
            }),
            progress: progress.clone(),
        });
        lock(&self.inner).jobs.insert(id.clone(), job.clone());
        tracing::debug!(job = %id, kind = ?kind, owner = %owner, "job started");

        let fut = work(progress);
        let jobs = Arc::clone(self);
        let shown = job.clone();
        tokio::spawn(async move {
            let outcome = fut.await;
            let mut v = lock(&job.view);
            v.finished_at = Some(OffsetDateTime::now_utc());
            match outcome {
                Ok(result) => {
                    v.state = JobState::Succeeded;
                    v.result = serde_json::to_value(result).ok();
                }
                Err(e) if e.kind() == ErrorKind::Cancelled => {
                    v.state = JobState::Cancelled;
                    v.error = Some(e.to_string());
                }
                Err(e) => {
                    v.state = JobState::Failed;
                    v.error = Some(job_error(&v.id, kind, &e));
                }
            }
            tracing::debug!(job = %v.id, state = ?v.state, "job finished");
            let id = v.id.clone();
            drop(v);
            jobs.retire(id);
        });
        shown.view()
    }

    /// Records a job that failed before it could start (a scheduled
    /// backup refused), so it is visible like any other.
    pub fn record_failed(
        &self,
        kind: JobKind,
        owner: &Owner,
        volume: Option<VolumeName>,
        error: &Error,
    ) -> JobView {
        let id = JobId::generate();
        let now = OffsetDateTime::now_utc();
        let view = JobView {
            id: id.clone(),
            kind,
            volume,
            owner: owner.clone(),
            state: JobState::Failed,
            bytes_done: 0,
            bytes_total: 0,
            waiting_for: None,
            started_at: now,
            finished_at: Some(now),
            error: Some(job_error(&id, kind, error)),
            result: None,
        };
        let job = Arc::new(Job {
            view: Mutex::new(view.clone()),
            progress: Progress::new(),
        });
        lock(&self.inner).jobs.insert(id.clone(), job);
        self.retire(id);
        view
    }

    fn retire(&self, id: JobId) {
        let mut reg = lock(&self.inner);
        reg.finished.push_back(id);
        while reg.finished.len() > KEEP_FINISHED {
            if let Some(old) = reg.finished.pop_front() {
                reg.jobs.remove(&old);
            }
        }
    }

    fn find(&self, id: &JobId) -> Option<Arc<Job>> {
        lock(&self.inner).jobs.get(id).cloned()
    }

    fn visible(&self, a: &Actor, id: &JobId) -> Result<Arc<Job>, Error> {
        let job = self
            .find(id)
            .filter(|j| a.admin || lock(&j.view).owner == a.owner);
        job.ok_or_else(|| Error::JobNotFound {
            job: id.to_string(),
        })
    }

    /// The job `id`, if the actor may see it.
    pub fn get(&self, a: &Actor, id: &JobId) -> Result<JobView, Error> {
        Ok(self.visible(a, id)?.view())
    }

    /// Asks job `id` to stop at its next block; returns it as it is now
    /// (still `running` until it has stopped).
    pub fn cancel(&self, a: &Actor, id: &JobId) -> Result<JobView, Error> {
        let job = self.visible(a, id)?;
        job.progress.cancel();
        Ok(job.view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(owner: &str, admin: bool) -> Actor {
        Actor {
            owner: Owner::new(owner).expect("valid owner"),
            admin,
        }
    }

    #[tokio::test]
    async fn jobs_report_results_errors_and_cancellation_to_their_owner_only() {
        let jobs = Arc::new(Jobs::default());
        let me = actor("team-a", false);
        let ok = jobs.spawn(JobKind::Gc, &me.owner, None, |_| async { Ok(42) });
        let stuck = jobs.spawn(JobKind::Verify, &me.owner, None, |p| async move {
            while !p.is_cancelled() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err::<(), _>(Error::Cancelled {
                operation: "verify".into(),
            })
        });
        assert_eq!(stuck.state, JobState::Running);
        assert!(jobs.get(&actor("team-b", false), &ok.id).is_err());
        assert!(jobs.get(&actor("root", true), &ok.id).is_ok());
        jobs.cancel(&me, &stuck.id).expect("cancel");
        for _ in 0..200 {
            let (a, b) = (jobs.get(&me, &ok.id), jobs.get(&me, &stuck.id));
            let (a, b) = (a.expect("ok job"), b.expect("stuck job"));
            if a.state != JobState::Running && b.state != JobState::Running {
                assert_eq!(a.state, JobState::Succeeded);
                assert_eq!(a.result, Some(serde_json::json!(42)));
                assert_eq!(b.state, JobState::Cancelled);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("jobs did not finish");
    }
}
