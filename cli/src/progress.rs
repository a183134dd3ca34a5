//! Following a job until it ends.
//!
//! On a terminal (stderr) a progress bar shows bytes done and total, the
//! rate and the time left; otherwise a plain line goes to stderr every
//! [`PLAIN_EVERY`], so logs of scripted runs show progress without
//! control characters. Ctrl-C while following asks the daemon to cancel
//! the job and keeps following until the daemon says it has ended; a
//! second Ctrl-C stops following at once (the job is still cancelled).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{decode, Job};
use crate::client::{segment, Client};
use crate::error::CliError;
use crate::output::{human_bytes, human_duration};

/// How often the job is asked for.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// How often a plain progress line is written when not on a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// What shows progress while following.
enum Display {
    /// On a terminal; `sized` once the job's total is known.
    Bar { bar: ProgressBar, sized: bool },
    /// Elsewhere: a line every [`PLAIN_EVERY`].
    Plain { last: Instant },
}

impl Display {
    fn new(job: &Job) -> Display {
        if !std::io::stderr().is_terminal() {
            return Display::Plain {
                last: Instant::now(),
            };
        }
        let bar = ProgressBar::no_length();
        bar.set_style(spinner_style());
        bar.set_message(label(job));
        let mut display = Display::Bar { bar, sized: false };
        display.update(job, Instant::now(), job.bytes_done);
        display
    }

    fn update(&mut self, job: &Job, started: Instant, first_done: u64) {
        match self {
            Display::Bar { bar, sized } => {
                match &job.waiting_for {
                    Some(what) => bar.set_message(format!("{} (waiting for {what})", label(job))),
                    None => bar.set_message(label(job)),
                }
                // The total may only be known once the job has looked at
                // the volume; the spinner becomes a bar then.
                if let Some(total) = job.bytes_total.filter(|t| *t > 0) {
                    bar.set_length(total);
                    if !*sized {
                        bar.set_style(bar_style());
                        *sized = true;
                    }
                }
                bar.set_position(job.bytes_done);
                bar.tick();
            }
            Display::Plain { last } => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", plain_line(job, started.elapsed(), first_done));
                }
            }
        }
    }

    fn note(&self, text: &str) {
        match self {
            Display::Bar { bar, .. } => bar.println(text),
            Display::Plain { .. } => eprintln!("{text}"),
        }
    }

    fn finish(self) {
        if let Display::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// Done, total, rate and time left.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Done and rate, while the total is unknown.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `backup data`, `gc`, `verify`.
fn label(job: &Job) -> String {
    match &job.volume {
        Some(volume) => format!("{} {volume}", job.kind()),
        None => job.kind().to_owned(),
    }
}

/// The line written every [`PLAIN_EVERY`] when not on a terminal.
pub fn plain_line(job: &Job, elapsed: Duration, first_done: u64) -> String {
    let done = human_bytes(job.bytes_done);
    let progress = match job.bytes_total.filter(|t| *t > 0) {
        Some(total) => format!(
            "{done} of {} ({}%)",
            human_bytes(total),
            job.bytes_done.saturating_mul(100) / total
        ),
        None => done,
    };
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        let bytes = job.bytes_done.saturating_sub(first_done) as f64 / secs;
        format!(", {}/s", human_bytes(bytes as u64))
    } else {
        String::new()
    };
    let waiting = match &job.waiting_for {
        Some(what) => format!(", waiting for {what}"),
        None => String::new(),
    };
    format!(
        "{} job {}: {progress}{rate}, {} so far{waiting}",
        label(job),
        job.id,
        human_duration(elapsed)
    )
}

/// Follows `job` until it ends and returns its last state.
pub async fn follow(client: &Client, mut job: Job) -> Result<Job, CliError> {
    if job.is_finished() {
        return Ok(job);
    }
    let path = format!("/v1/jobs/{}", segment(&job.id));
    let started = Instant::now();
    let first_done = job.bytes_done;
    let mut display = Display::new(&job);
    let mut cancel_sent = false;
    // One listener for the whole follow, so a Ctrl-C that arrives while a
    // poll is in flight is kept for the next turn instead of lost.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(CliError::Terminal)?;

    let outcome = loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {
                match client.get(&path).await.and_then(|v| decode::<Job>(&v, "job")) {
                    Ok(next) => job = next,
                    Err(err) => break Err(err),
                }
                if job.is_finished() {
                    break Ok(job);
                }
                display.update(&job, started, first_done);
            }
            _ = interrupt.recv() => {
                if cancel_sent {
                    break Err(CliError::JobCancelled {
                        kind: job.kind().to_owned(),
                        id: job.id.clone(),
                    });
                }
                cancel_sent = true;
                display.note(&format!(
                    "cancelling {} job {} (Ctrl-C again to stop waiting)",
                    job.kind(),
                    job.id
                ));
                let cancel = format!("/v1/jobs/{}/cancel", segment(&job.id));
                // The job may have ended meanwhile; its state will say.
                if let Err(err) = client.post(&cancel, None).await {
                    display.note(&format!("cannot cancel job {}: {err}", job.id));
                }
            }
        }
    };
    display.finish();
    outcome
}

/// What a finished job means: its result if it succeeded, an error if it
/// failed or was cancelled.
pub fn result(job: &Job) -> Result<Value, CliError> {
    match job.state.as_str() {
        "succeeded" => Ok(job.result.clone().unwrap_or(Value::Null)),
        "cancelled" => Err(CliError::JobCancelled {
            kind: job.kind().to_owned(),
            id: job.id.clone(),
        }),
        _ => Err(CliError::JobFailed {
            kind: job.kind().to_owned(),
            id: job.id.clone(),
            message: job.error_message(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(value: Value) -> Job {
        decode(&value, "job").expect("a job")
    }

    #[test]
    fn plain_lines_show_done_total_percent_and_rate() {
        let running = job(json!({
            "id": "job-1", "kind": "backup", "volume": "data", "state": "running",
            "bytes_done": 100 * 1024 * 1024, "bytes_total": 400 * 1024 * 1024
        }));
        assert_eq!(
            plain_line(&running, Duration::from_secs(10), 0),
            "backup data job job-1: 100 MiB of 400 MiB (25%), 10 MiB/s, 10.0s so far"
        );
    }

    #[test]
    fn plain_lines_say_what_a_waiting_job_waits_for() {
        let waiting = job(json!({
            "id": "job-2", "kind": "gc", "state": "running", "bytes_done": 0,
            "waiting_for": "running backups to finish: locks/backup-bk-1"
        }));
        assert_eq!(
            plain_line(&waiting, Duration::from_secs(10), 0),
            "gc job job-2: 0 B, 0 B/s, 10.0s so far, \
             waiting for running backups to finish: locks/backup-bk-1"
        );
    }

    #[test]
    fn finished_jobs_become_results_or_errors() {
        let done = job(json!({"id": "j", "state": "succeeded", "result": {"id": "bk-1"}}));
        assert_eq!(result(&done).expect("succeeded")["id"], "bk-1");

        let failed = job(json!({
            "id": "j", "kind": "backup", "state": "failed",
            "error": {"code": "unavailable", "message": "cannot reach http://s3:9000 bucket kiln"}
        }));
        let err = result(&failed).expect_err("failed");
        assert_eq!(
            err.to_string(),
            "backup job j failed: cannot reach http://s3:9000 bucket kiln (unavailable)"
        );

        let failed = job(json!({"id": "j", "kind": "gc", "state": "failed", "error": "disk full"}));
        assert_eq!(
            result(&failed).expect_err("failed").to_string(),
            "gc job j failed: disk full"
        );

        let cancelled = job(json!({"id": "j", "kind": "restore", "state": "cancelled"}));
        assert_eq!(
            result(&cancelled).expect_err("cancelled").to_string(),
            "restore job j was cancelled"
        );
    }
}
