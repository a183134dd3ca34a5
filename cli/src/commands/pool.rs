//! `kiln pool list`.

use serde_json::Value;

use super::Ctx;
use crate::api::{decode, list, Pool};
use crate::args::PoolCommand;
use crate::error::CliError;
use crate::output::{human_bytes, human_mib, or_dash, print_json, Align, Table};

/// Runs one `kiln pool` command.
pub async fn run(ctx: &Ctx, command: PoolCommand) -> Result<(), CliError> {
    match command {
        PoolCommand::List => {
            let pools = list(ctx.client.get("/v1/pools").await?, "pools")?;
            if ctx.json {
                print_json(&Value::Array(pools));
                return Ok(());
            }
            let pools: Vec<Pool> = pools
                .iter()
                .map(|v| decode(v, "pool"))
                .collect::<Result<_, _>>()?;
            print!("{}", pool_table(&pools));
            Ok(())
        }
    }
}

/// The `pool list` table, then a line per pool holding unmanaged images.
pub fn pool_table(pools: &[Pool]) -> String {
    let thin = pools
        .iter()
        .any(|p| p.capacity.as_ref().is_some_and(|c| c.thin.is_some()));
    let mut columns = vec![
        ("NAME", Align::Left),
        ("DRIVER", Align::Left),
        ("PLUGIN", Align::Left),
        ("SIZE", Align::Right),
        ("USED", Align::Right),
        ("FREE", Align::Right),
        ("PROVISIONED", Align::Right),
        ("VOLUMES", Align::Right),
        ("UNMANAGED", Align::Right),
    ];
    if thin {
        columns.push(("THIN DATA/META", Align::Left));
    }
    let mut table = Table::new(&columns);
    for pool in pools {
        let plugin = pool.plugin.as_ref().map(|p| match &p.version {
            Some(version) => format!("{} {version}", p.name),
            None => p.name.clone(),
        });
        let capacity = |f: fn(&crate::api::Capacity) -> u64| {
            pool.capacity
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| human_bytes(f(c)))
        };
        let mut row = vec![
            pool.name.clone(),
            or_dash(pool.driver.as_deref()),
            or_dash(plugin.as_deref()),
            capacity(|c| c.size_bytes),
            capacity(|c| c.allocated_bytes),
            capacity(|c| c.free_bytes),
            pool.provisioned_mib
                .map_or_else(|| "-".to_owned(), human_mib),
            pool.volumes
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            pool.unmanaged.len().to_string(),
        ];
        if thin {
            let usage = pool.capacity.as_ref().and_then(|c| c.thin.as_ref());
            row.push(usage.map_or_else(
                || "-".to_owned(),
                |t| format!("{:.1}%/{:.1}%", t.data_percent, t.metadata_percent),
            ));
        }
        table.row(row);
    }

    let mut text = table.render();
    for pool in pools {
        if let Some(error) = pool.capacity_error.as_deref().filter(|e| !e.is_empty()) {
            text.push_str(&format!(
                "pool {:?}: capacity unknown: {error}\n",
                pool.name
            ));
        }
    }
    for pool in pools.iter().filter(|p| !p.unmanaged.is_empty()) {
        text.push_str(&format!(
            "pool {:?} holds {} image(s) the catalog does not know: {}\n",
            pool.name,
            pool.unmanaged.len(),
            pool.unmanaged.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_pool_table_shows_use_plugins_and_unmanaged_images() {
        let pools: Vec<Pool> = [
            json!({"name": "default", "driver": "ext4-file", "plugin": null,
                   "capacity": {"size_bytes": 107374182400u64, "allocated_bytes": 1073741824u64,
                                "free_bytes": 106300440576u64, "thin": null},
                   "provisioned_mib": 2048, "volumes": 2, "unmanaged": ["vol-9", "vol-10"]}),
            json!({"name": "q", "driver": "plugin",
                   "plugin": {"name": "qcow2", "version": "0.1.0"},
                   "capacity": {"size_bytes": 1073741824u64, "allocated_bytes": 0,
                                "free_bytes": 1073741824u64,
                                "thin": {"data_percent": 12.5, "metadata_percent": 3.0}},
                   "provisioned_mib": 0, "volumes": 0, "unmanaged": []}),
            json!({"name": "gone", "driver": "ext4-file", "capacity": null,
                   "capacity_error": "statvfs /srv/gone: no such file or directory",
                   "unmanaged": []}),
        ]
        .iter()
        .map(|v| decode(v, "pool").expect("a pool"))
        .collect();
        assert_eq!(
            pool_table(&pools),
            "\
NAME     DRIVER     PLUGIN          SIZE   USED    FREE  PROVISIONED  VOLUMES  UNMANAGED  THIN DATA/META
default  ext4-file  -            100 GiB  1 GiB  99 GiB        2 GiB        2          2  -
q        plugin     qcow2 0.1.0    1 GiB    0 B   1 GiB        0 MiB        0          0  12.5%/3.0%
gone     ext4-file  -                  -      -       -            -        -          0  -
pool \"gone\": capacity unknown: statvfs /srv/gone: no such file or directory
pool \"default\" holds 2 image(s) the catalog does not know: vol-9, vol-10
"
        );
    }
}
