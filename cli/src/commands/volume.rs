//! `kiln volume ...`: volumes, and the backup commands that name one.

use serde_json::{json, Value};

use super::{backup, Ctx};
use crate::api::{decode, list, Volume};
use crate::args::VolumeCommand;
use crate::client::segment;
use crate::confirm::confirm;
use crate::error::CliError;
use crate::output::{
    attachments, details, human_mib, or_dash, print_json, time_or_dash, Align, Table,
};

/// Runs one `kiln volume` command.
pub async fn run(ctx: &Ctx, command: VolumeCommand) -> Result<(), CliError> {
    match command {
        VolumeCommand::Create { name, size, pool } => {
            let mut body = json!({ "name": name, "size_mib": size });
            if let Some(pool) = pool {
                body["pool"] = Value::String(pool);
            }
            let answer = ctx.client.post("/v1/volumes", Some(body)).await?;
            print_volume(ctx, &answer, "created")
        }
        VolumeCommand::List => {
            let volumes = list(ctx.client.get("/v1/volumes").await?, "volumes")?;
            if ctx.json {
                print_json(&Value::Array(volumes));
                return Ok(());
            }
            let volumes: Vec<Volume> = volumes
                .iter()
                .map(|v| decode(v, "volume"))
                .collect::<Result<_, _>>()?;
            print!("{}", volume_table(&volumes));
            Ok(())
        }
        VolumeCommand::Get { name } => {
            let answer = ctx.client.get(&path(&name)).await?;
            if ctx.json {
                print_json(&answer);
                return Ok(());
            }
            print!("{}", volume_details(&decode(&answer, "volume")?));
            Ok(())
        }
        VolumeCommand::Delete { name, yes } => {
            confirm(&format!("delete volume {name:?} and its data"), yes)?;
            ctx.client.delete(&path(&name)).await?;
            if !ctx.json {
                println!("deleted volume {name:?}");
            }
            Ok(())
        }
        VolumeCommand::Resize { name, size } => {
            let body = json!({ "size_mib": size });
            let answer = ctx
                .client
                .post(&format!("{}/resize", path(&name)), Some(body))
                .await?;
            print_volume(ctx, &answer, "resized")
        }
        VolumeCommand::Clone { source, name } => {
            let body = json!({ "name": name });
            let answer = ctx
                .client
                .post(&format!("{}/clone", path(&source)), Some(body))
                .await?;
            if ctx.json {
                print_json(&answer);
                return Ok(());
            }
            let copy: Volume = decode(&answer, "volume")?;
            println!(
                "cloned volume {source:?} to {:?} ({})",
                copy.name,
                human_mib(copy.size_mib)
            );
            Ok(())
        }
        VolumeCommand::Backup { name, no_wait } => backup::backup(ctx, &name, no_wait).await,
        VolumeCommand::BackupList { name } => backup::list(ctx, &name).await,
        VolumeCommand::Restore {
            name,
            backup_id,
            to,
            yes,
            no_wait,
        } => backup::restore(ctx, &name, &backup_id, to.as_deref(), yes, no_wait).await,
        VolumeCommand::BackupDelete { name, id, yes } => backup::delete(ctx, &name, &id, yes).await,
    }
}

/// `/v1/volumes/NAME`.
pub fn path(name: &str) -> String {
    format!("/v1/volumes/{}", segment(name))
}

/// Prints a volume a command made or changed: JSON, or one line.
fn print_volume(ctx: &Ctx, answer: &Value, done: &str) -> Result<(), CliError> {
    if ctx.json {
        print_json(answer);
        return Ok(());
    }
    let volume: Volume = decode(answer, "volume")?;
    println!(
        "{done} volume {:?} ({}, pool {})",
        volume.name,
        human_mib(volume.size_mib),
        or_dash(volume.pool.as_deref())
    );
    Ok(())
}

/// The `volume list` table.
pub fn volume_table(volumes: &[Volume]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("OWNER", Align::Left),
        ("POOL", Align::Left),
        ("SIZE", Align::Right),
        ("STATUS", Align::Left),
        ("ATTACHMENTS", Align::Left),
    ]);
    for volume in volumes {
        table.row(vec![
            volume.name.clone(),
            or_dash(volume.owner.as_deref()),
            or_dash(volume.pool.as_deref()),
            human_mib(volume.size_mib),
            or_dash(volume.status.as_deref()),
            attachments(&volume.attachments),
        ]);
    }
    table.render()
}

/// The `volume get` view.
pub fn volume_details(volume: &Volume) -> String {
    let mut pairs = vec![
        ("name", volume.name.clone()),
        ("owner", or_dash(volume.owner.as_deref())),
        ("pool", or_dash(volume.pool.as_deref())),
        ("size", size_with_mib(volume.size_mib)),
        ("status", or_dash(volume.status.as_deref())),
    ];
    if let Some(error) = &volume.error {
        pairs.push(("error", error.clone()));
    }
    pairs.push(("created", time_or_dash(volume.created_at.as_deref())));
    pairs.push(("attachments", attachments(&volume.attachments)));
    details(&pairs)
}

/// `512 MiB`, or `1.5 GiB (1536 MiB)` when the exact figure is hidden.
fn size_with_mib(mib: u64) -> String {
    if mib < 1024 {
        human_mib(mib)
    } else {
        format!("{} ({mib} MiB)", human_mib(mib))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_volume_table_shows_sizes_and_attachments() {
        let volumes: Vec<Volume> = [
            json!({"name": "data", "owner": "team-a", "pool": "default", "size_mib": 1024,
                   "status": "ready", "attachments": [
                       {"sandbox": "sb1", "mount": "/data", "read_only": false}],
                   "some_future_field": 1}),
            json!({"name": "scratch", "owner": "team-a", "pool": "fast", "size_mib": 512,
                   "status": "error", "error": "image missing", "attachments": []}),
        ]
        .iter()
        .map(|v| decode(v, "volume").expect("a volume"))
        .collect();
        assert_eq!(
            volume_table(&volumes),
            "\
NAME     OWNER   POOL        SIZE  STATUS  ATTACHMENTS
data     team-a  default    1 GiB  ready   sb1:/data(rw)
scratch  team-a  fast     512 MiB  error   -
"
        );
        let text = volume_details(&volumes[1]);
        assert!(text.contains("error:       image missing\n"), "{text}");
        assert!(text.contains("size:        512 MiB\n"), "{text}");
        assert_eq!(size_with_mib(1536), "1.5 GiB (1536 MiB)");
    }
}
