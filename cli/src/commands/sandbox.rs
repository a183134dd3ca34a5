//! `kiln sandbox ...`: sandboxes and their attachments.

use serde_json::{json, Value};

use super::Ctx;
use crate::api::{decode, list, Sandbox};
use crate::args::SandboxCommand;
use crate::client::segment;
use crate::confirm::confirm;
use crate::error::CliError;
use crate::output::{
    details, mode, or_dash, print_json, sandbox_volumes, time_or_dash, Align, Table,
};

/// Runs one `kiln sandbox` command.
pub async fn run(ctx: &Ctx, command: SandboxCommand) -> Result<(), CliError> {
    match command {
        SandboxCommand::Create { name, volumes } => {
            let volumes: Vec<Value> = volumes
                .iter()
                .map(|v| json!({ "volume": v.volume, "mount": v.mount, "read_only": v.read_only }))
                .collect();
            let body = json!({ "name": name, "volumes": volumes });
            let answer = ctx.client.post("/v1/sandboxes", Some(body)).await?;
            print_sandbox(ctx, &answer, "created")
        }
        SandboxCommand::List => {
            let sandboxes = list(ctx.client.get("/v1/sandboxes").await?, "sandboxes")?;
            if ctx.json {
                print_json(&Value::Array(sandboxes));
                return Ok(());
            }
            let sandboxes: Vec<Sandbox> = sandboxes
                .iter()
                .map(|v| decode(v, "sandbox"))
                .collect::<Result<_, _>>()?;
            print!("{}", sandbox_table(&sandboxes));
            Ok(())
        }
        SandboxCommand::Get { name } => {
            let answer = ctx.client.get(&path(&name)).await?;
            if ctx.json {
                print_json(&answer);
                return Ok(());
            }
            print!("{}", sandbox_details(&decode(&answer, "sandbox")?));
            Ok(())
        }
        SandboxCommand::Stop { name } => {
            let answer = ctx
                .client
                .post(&format!("{}/stop", path(&name)), None)
                .await?;
            print_sandbox(ctx, &answer, "stopped")
        }
        SandboxCommand::Start { name } => {
            let answer = ctx
                .client
                .post(&format!("{}/start", path(&name)), None)
                .await?;
            print_sandbox(ctx, &answer, "started")
        }
        SandboxCommand::Destroy { name, yes } => {
            confirm(
                &format!("destroy sandbox {name:?} (its volumes are detached and kept)"),
                yes,
            )?;
            ctx.client.delete(&path(&name)).await?;
            if !ctx.json {
                println!("destroyed sandbox {name:?}");
            }
            Ok(())
        }
    }
}

/// `/v1/sandboxes/NAME`.
fn path(name: &str) -> String {
    format!("/v1/sandboxes/{}", segment(name))
}

/// Prints a sandbox a command made or changed: JSON, or a line and,
/// while it runs, the devices a VMM needs.
fn print_sandbox(ctx: &Ctx, answer: &Value, done: &str) -> Result<(), CliError> {
    if ctx.json {
        print_json(answer);
        return Ok(());
    }
    let sandbox: Sandbox = decode(answer, "sandbox")?;
    let count = match sandbox.volumes.len() {
        1 => "1 volume".to_owned(),
        n => format!("{n} volumes"),
    };
    println!(
        "{done} sandbox {:?} ({}, {count})",
        sandbox.name,
        or_dash(sandbox.state.as_deref())
    );
    if sandbox.volumes.iter().any(|v| v.device.is_some()) {
        print!("{}", device_table(&sandbox));
    }
    Ok(())
}

/// The `sandbox list` table.
pub fn sandbox_table(sandboxes: &[Sandbox]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("OWNER", Align::Left),
        ("STATE", Align::Left),
        ("VOLUMES", Align::Left),
        ("CREATED", Align::Left),
    ]);
    for sandbox in sandboxes {
        table.row(vec![
            sandbox.name.clone(),
            or_dash(sandbox.owner.as_deref()),
            or_dash(sandbox.state.as_deref()),
            sandbox_volumes(&sandbox.volumes),
            time_or_dash(sandbox.created_at.as_deref()),
        ]);
    }
    table.render()
}

/// A sandbox's volumes with the device path and mode a VMM needs.
fn device_table(sandbox: &Sandbox) -> String {
    let mut table = Table::new(&[
        ("VOLUME", Align::Left),
        ("MOUNT", Align::Left),
        ("MODE", Align::Left),
        ("DEVICE", Align::Left),
    ]);
    for volume in &sandbox.volumes {
        table.row(vec![
            volume.volume.clone(),
            volume.mount.clone(),
            mode(volume.read_only).to_owned(),
            or_dash(volume.device.as_deref()),
        ]);
    }
    table.render()
}

/// The `sandbox get` view.
pub fn sandbox_details(sandbox: &Sandbox) -> String {
    let mut text = details(&[
        ("name", sandbox.name.clone()),
        ("owner", or_dash(sandbox.owner.as_deref())),
        ("state", or_dash(sandbox.state.as_deref())),
        ("created", time_or_dash(sandbox.created_at.as_deref())),
    ]);
    if !sandbox.volumes.is_empty() {
        text.push('\n');
        text.push_str(&device_table(sandbox));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sandbox_views_show_volumes_and_devices() {
        let sandbox: Sandbox = decode(
            &json!({"name": "sb1", "owner": "team-a", "state": "running",
                    "created_at": "2026-12-03T10:00:00Z",
                    "volumes": [
                        {"volume": "data", "mount": "/data", "read_only": false,
                         "device": "/var/lib/kiln/volumes/vol-1.img"},
                        {"volume": "ref", "mount": "/ref", "read_only": true,
                         "device": "/var/lib/kiln/volumes/vol-2.img"}]}),
            "sandbox",
        )
        .expect("a sandbox");
        assert_eq!(
            sandbox_table(std::slice::from_ref(&sandbox)),
            "\
NAME  OWNER   STATE    VOLUMES                       CREATED
sb1   team-a  running  data:/data(rw), ref:/ref(ro)  2026-12-03T10:00:00Z
"
        );
        let text = sandbox_details(&sandbox);
        assert!(
            text.contains("data    /data  rw    /var/lib/kiln/volumes/vol-1.img\n"),
            "{text}"
        );
        assert!(
            text.contains("ref     /ref   ro    /var/lib/kiln/volumes/vol-2.img\n"),
            "{text}"
        );
    }
}
