//! Backups, restores, garbage collection, verification and jobs.
//!
//! Everything here that takes long runs as a job in the daemon: the
//! command starts it, then follows it (see [`crate::progress`]) unless
//! `--no-wait` was given, in which case it prints the job and returns.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::volume::path as volume_path;
use super::Ctx;
use crate::api::{decode, list as take_list, Backup, GcResult, Job, VerifyResult, Volume};
use crate::args::{BackupCommand, JobCommand};
use crate::client::segment;
use crate::confirm::confirm;
use crate::error::CliError;
use crate::output::{
    details, human_bytes, human_duration, human_mib, or_dash, print_json, time_or_dash, Align,
    Table,
};
use crate::progress::{follow, result};

/// Runs one `kiln backup` command.
pub async fn run(ctx: &Ctx, command: BackupCommand) -> Result<(), CliError> {
    match command {
        BackupCommand::Gc { no_wait } => {
            let job = start(ctx, "/v1/backups/gc", None).await?;
            let Some(job) = wait(ctx, job, no_wait).await? else {
                return Ok(());
            };
            let value = result(&job)?;
            if ctx.json {
                print_json(&value);
                return Ok(());
            }
            let gc: GcResult = decode(&value, "gc result")?;
            println!(
                "garbage collection removed {} blocks ({})",
                gc.blocks_deleted,
                human_bytes(gc.bytes_deleted)
            );
            Ok(())
        }
        BackupCommand::Verify { id, no_wait } => {
            let path = format!("/v1/backups/{}/verify", segment(&id));
            let job = start(ctx, &path, None).await?;
            let Some(job) = wait(ctx, job, no_wait).await? else {
                return Ok(());
            };
            let value = result(&job)?;
            let verify: VerifyResult = decode(&value, "verify result")?;
            if ctx.json {
                print_json(&value);
            } else {
                print!("{}", verify_report(&id, &verify));
            }
            if verify.damaged.is_empty() {
                Ok(())
            } else {
                Err(CliError::Damaged {
                    backup: id,
                    damaged: verify.damaged.len(),
                })
            }
        }
    }
}

/// Runs one `kiln job` command.
pub async fn job(ctx: &Ctx, command: JobCommand) -> Result<(), CliError> {
    match command {
        JobCommand::Get { id } => {
            let answer = ctx
                .client
                .get(&format!("/v1/jobs/{}", segment(&id)))
                .await?;
            if ctx.json {
                print_json(&answer);
                return Ok(());
            }
            print!("{}", job_details(&decode(&answer, "job")?));
            Ok(())
        }
        JobCommand::Cancel { id } => {
            let answer = ctx
                .client
                .post(&format!("/v1/jobs/{}/cancel", segment(&id)), None)
                .await?;
            if ctx.json {
                print_json(&answer);
                return Ok(());
            }
            let job: Job = decode(&answer, "job")?;
            println!(
                "asked to cancel {} job {} (state: {})",
                job.kind(),
                job.id,
                job.state
            );
            Ok(())
        }
    }
}

/// `kiln volume backup NAME`.
pub async fn backup(ctx: &Ctx, name: &str, no_wait: bool) -> Result<(), CliError> {
    let started = Instant::now();
    let path = format!("{}/backups", volume_path(name));
    let job = start(ctx, &path, Some(json!({}))).await?;
    let Some(job) = wait(ctx, job, no_wait).await? else {
        return Ok(());
    };
    let value = result(&job)?;
    let backup: Backup = decode(&value, "backup")?;
    if backup.consistency.as_deref() == Some("inconsistent") {
        eprintln!(
            "warning: backup {} may be inconsistent: volume {name:?} was attached and its pool \
             cannot snapshot, so files written during the backup may be torn",
            backup.id
        );
    }
    if ctx.json {
        print_json(&value);
        return Ok(());
    }
    let taken = job_duration(&job).unwrap_or_else(|| started.elapsed());
    print!("{}", backup_report(name, &backup, taken));
    Ok(())
}

/// `kiln volume backup-list NAME`.
pub async fn list(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let answer = ctx
        .client
        .get(&format!("{}/backups", volume_path(name)))
        .await?;
    let mut backups = take_list(answer, "backups")?;
    // Newest first, whatever order the daemon used.
    backups.sort_by_cached_key(|b| {
        std::cmp::Reverse(
            b.get("created_at")
                .and_then(Value::as_str)
                .and_then(parse_time),
        )
    });
    if ctx.json {
        print_json(&Value::Array(backups));
        return Ok(());
    }
    let backups: Vec<Backup> = backups
        .iter()
        .map(|v| decode(v, "backup"))
        .collect::<Result<_, _>>()?;
    print!("{}", backup_table(&backups));
    Ok(())
}

/// `kiln volume restore NAME --backup-id ID [--to NEW]`.
pub async fn restore(
    ctx: &Ctx,
    name: &str,
    backup_id: &str,
    to: Option<&str>,
    yes: bool,
    no_wait: bool,
) -> Result<(), CliError> {
    if to.is_none() {
        confirm(
            &format!("replace the content of volume {name:?} with backup {backup_id}"),
            yes,
        )?;
    }
    let mut body = json!({ "backup_id": backup_id });
    if let Some(to) = to {
        body["to"] = Value::String(to.to_owned());
    }
    let path = format!("{}/restore", volume_path(name));
    let job = start(ctx, &path, Some(body)).await?;
    let Some(job) = wait(ctx, job, no_wait).await? else {
        return Ok(());
    };
    let value = result(&job)?;
    if ctx.json {
        print_json(&value);
        return Ok(());
    }
    let target = match decode::<Volume>(&value, "volume") {
        Ok(volume) => format!("{:?} ({})", volume.name, human_mib(volume.size_mib)),
        Err(_) => format!("{:?}", to.unwrap_or(name)),
    };
    println!("restored backup {backup_id} into volume {target}");
    Ok(())
}

/// `kiln volume backup-delete NAME ID`.
pub async fn delete(ctx: &Ctx, name: &str, id: &str, yes: bool) -> Result<(), CliError> {
    confirm(&format!("delete backup {id} of volume {name:?}"), yes)?;
    let path = format!("{}/backups/{}", volume_path(name), segment(id));
    ctx.client.delete(&path).await?;
    if !ctx.json {
        println!("deleted backup {id} of volume {name:?}");
    }
    Ok(())
}

/// A job as the daemon answered it: read, and as sent (for `--json`).
struct Started {
    job: Job,
    answer: Value,
}

/// Starts a job with `POST path`.
async fn start(ctx: &Ctx, path: &str, body: Option<Value>) -> Result<Started, CliError> {
    let answer = ctx.client.post(path, body).await?;
    let job: Job = decode(&answer, "job")?;
    Ok(Started { job, answer })
}

/// Follows the job to its end, or with `--no-wait` prints it and answers
/// `None`.
async fn wait(ctx: &Ctx, started: Started, no_wait: bool) -> Result<Option<Job>, CliError> {
    let Started { job, answer } = started;
    if !no_wait {
        return follow(&ctx.client, job).await.map(Some);
    }
    if ctx.json {
        print_json(&answer);
    } else {
        println!(
            "started {} job {} (follow it with: kiln job get {})",
            job.kind(),
            job.id,
            job.id
        );
    }
    Ok(None)
}

/// How long the daemon says the job ran.
fn job_duration(job: &Job) -> Option<Duration> {
    let started = parse_time(job.started_at.as_deref()?)?;
    let finished = parse_time(job.finished_at.as_deref()?)?;
    (finished - started).try_into().ok()
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// What `volume backup` prints when the backup is done.
pub fn backup_report(name: &str, backup: &Backup, taken: Duration) -> String {
    let bytes = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), human_bytes);
    format!(
        "backed up volume {name:?}\n{}",
        details(&[
            ("backup id", backup.id.clone()),
            ("logical size", bytes(backup.logical_bytes)),
            ("uploaded", bytes(backup.stored_bytes)),
            ("reused", bytes(backup.reused_bytes)),
            ("consistency", or_dash(backup.consistency.as_deref())),
            ("time taken", human_duration(taken)),
        ])
    )
}

/// The `volume backup-list` table.
pub fn backup_table(backups: &[Backup]) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("CREATED", Align::Left),
        ("SIZE", Align::Right),
        ("DATA", Align::Right),
        ("CONSISTENCY", Align::Left),
    ]);
    for backup in backups {
        table.row(vec![
            backup.id.clone(),
            time_or_dash(backup.created_at.as_deref()),
            backup.size_mib.map_or_else(|| "-".to_owned(), human_mib),
            backup
                .logical_bytes
                .map_or_else(|| "-".to_owned(), human_bytes),
            or_dash(backup.consistency.as_deref()),
        ]);
    }
    table.render()
}

/// What `backup verify` prints: the count, then each damaged block.
pub fn verify_report(id: &str, verify: &VerifyResult) -> String {
    if verify.damaged.is_empty() {
        return format!(
            "backup {id}: {} blocks checked, all intact\n",
            verify.blocks_checked
        );
    }
    let mut text = format!(
        "backup {id}: {} blocks checked, {} damaged:\n",
        verify.blocks_checked,
        verify.damaged.len()
    );
    for hash in &verify.damaged {
        text.push_str(&format!("  {hash}\n"));
    }
    text
}

/// The `job get` view.
pub fn job_details(job: &Job) -> String {
    let progress = match job.bytes_total.filter(|t| *t > 0) {
        Some(total) => format!(
            "{} of {} ({}%)",
            human_bytes(job.bytes_done),
            human_bytes(total),
            job.bytes_done.saturating_mul(100) / total
        ),
        None => human_bytes(job.bytes_done),
    };
    let mut pairs = vec![
        ("id", job.id.clone()),
        ("kind", job.kind().to_owned()),
        ("volume", or_dash(job.volume.as_deref())),
        ("state", job.state.clone()),
        ("progress", progress),
        ("started", time_or_dash(job.started_at.as_deref())),
        ("finished", time_or_dash(job.finished_at.as_deref())),
    ];
    if job.state == "failed" {
        pairs.push(("error", job.error_message()));
    }
    if let Some(result) = job.result.as_ref().filter(|r| !r.is_null()) {
        pairs.push(("result", result.to_string()));
    }
    details(&pairs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn backup_reports_name_id_sizes_and_time() {
        let backup: Backup = decode(
            &json!({"id": "bk-1", "volume": "data", "created_at": "2026-12-03T10:00:00Z",
                    "consistency": "clean", "size_mib": 10240,
                    "logical_bytes": 314572800u64, "stored_bytes": 301989888u64,
                    "reused_bytes": 12582912u64}),
            "backup",
        )
        .expect("a backup");
        assert_eq!(
            backup_report("data", &backup, Duration::from_millis(12_300)),
            "\
backed up volume \"data\"
backup id:    bk-1
logical size: 300 MiB
uploaded:     288 MiB
reused:       12 MiB
consistency:  clean
time taken:   12.3s
"
        );
        assert_eq!(
            backup_table(&[backup]),
            "\
ID    CREATED                 SIZE     DATA  CONSISTENCY
bk-1  2026-12-03T10:00:00Z  10 GiB  300 MiB  clean
"
        );
    }

    #[test]
    fn verify_reports_name_each_damaged_block() {
        let ok = VerifyResult {
            blocks_checked: 12,
            damaged: vec![],
        };
        assert_eq!(
            verify_report("bk-1", &ok),
            "backup bk-1: 12 blocks checked, all intact\n"
        );
        let bad = VerifyResult {
            blocks_checked: 12,
            damaged: vec!["ab12".into(), "cd34".into()],
        };
        assert_eq!(
            verify_report("bk-1", &bad),
            "backup bk-1: 12 blocks checked, 2 damaged:\n  ab12\n  cd34\n"
        );
    }

    #[test]
    fn job_durations_come_from_the_daemons_clock() {
        let job: Job = decode(
            &json!({"id": "j", "state": "succeeded",
                    "started_at": "2026-12-03T10:00:00Z", "finished_at": "2026-12-03T10:00:12.5Z"}),
            "job",
        )
        .expect("a job");
        assert_eq!(job_duration(&job), Some(Duration::from_millis(12_500)));
    }
}
