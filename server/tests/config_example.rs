//! config.example.yaml is a valid config: every key it shows is one the
//! daemon accepts.

use std::path::Path;

use kiln_core::config::{Config, TargetConfig};

#[test]
fn the_example_config_parses_with_every_section() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.yaml");
    let text = std::fs::read_to_string(&example).expect("read config.example.yaml");

    // The example names secret files under /etc/kiln; put them in a
    // temporary folder instead.
    let dir = tempfile::Builder::new()
        .prefix(&format!("kiln-config-example-{}-", std::process::id()))
        .tempdir()
        .expect("temporary folder");
    for file in ["team-b.token", "s3.secret"] {
        std::fs::write(dir.path().join(file), "a-secret-of-twenty-chars\n").expect("write secret");
    }
    let text = text.replace("/etc/kiln/", &format!("{}/", dir.path().display()));

    let config = Config::parse(&text, dir.path(), "config.example.yaml")
        .unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(config.tokens.len(), 3);
    assert!(config.listen.tcp.is_some());
    assert_eq!(config.pools.len(), 1);
    assert_eq!(config.pools[&config.default_pool].driver, "ext4-file");
    assert_eq!(config.quotas.default_mib, 20480);
    assert_eq!(config.limits.max_body_bytes, 65536);
    let backup = config.backup.expect("the example has a backup section");
    assert!(matches!(backup.target, TargetConfig::S3(_)));
    assert_eq!(backup.schedules.len(), 1);
}
