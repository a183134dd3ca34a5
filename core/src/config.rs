//! `config.yaml`: its shape, its defaults and its checks.
//!
//! This is the only module that parses YAML. Driver options stay opaque
//! here (core knows no concrete backend): each pool's keys other than
//! `driver` are handed to the driver as a JSON value, which the driver's
//! crate deserializes into its own options type and reports errors against
//! with [`PoolConfig::options_error`].
//!
//! Unknown keys and bad values are refused with the key path named
//! (`pools.fast.driver: ...`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::types::{Owner, PoolName, VolumeName};

/// The whole configuration, after checks.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the catalog and (by default) the socket and pools live.
    pub data_dir: PathBuf,
    /// Where the daemon listens.
    pub listen: Listen,
    /// The tokens accepted, with their owners.
    pub tokens: Vec<TokenConfig>,
    /// The pools, by name.
    pub pools: BTreeMap<PoolName, PoolConfig>,
    /// The pool a create without `pool` goes to.
    pub default_pool: PoolName,
    /// Provisioned-size quotas.
    pub quotas: Quotas,
    /// Backups, if configured.
    pub backup: Option<BackupConfig>,
    /// Request limits.
    pub limits: Limits,
}

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The unix socket (mode 0600; token-less requests act as admin).
    pub socket: PathBuf,
    /// An optional TCP address (every request needs a token).
    pub tcp: Option<SocketAddr>,
}

/// One accepted token.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Whose token it is.
    pub owner: Owner,
    /// How the token is checked.
    pub secret: TokenSecret,
    /// Admins see and touch every owner's volumes.
    pub admin: bool,
}

/// How a token is known to the daemon.
#[derive(Clone)]
pub enum TokenSecret {
    /// The SHA-256 of the token (from `token`, `token_file` or
    /// `token_sha256`); tokens are compared by hash, in constant time.
    Sha256([u8; 32]),
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// One pool: its driver and the driver's own options.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: PoolName,
    /// The driver (`ext4-file`, `lvm-thin`, `zfs-zvol`, `plugin`).
    pub driver: String,
    /// Every other key of the pool, for the driver to parse.
    pub options: serde_json::Value,
}

impl PoolConfig {
    /// Parses the driver options into the driver's type, naming the pool
    /// in the error.
    pub fn parse_options<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.options.clone()).map_err(|e| self.options_error(e.to_string()))
    }

    /// An error about this pool's options.
    pub fn options_error(&self, reason: impl Into<String>) -> Error {
        Error::Config {
            key: format!("pools.{}", self.name),
            reason: reason.into(),
        }
    }

    /// An error about one of this pool's options, `key` being its path
    /// inside the pool (`reflink`); the error names `pools.NAME.KEY`.
    pub fn option_error(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            key: format!("pools.{}.{key}", self.name),
            reason: reason.into(),
        }
    }
}

/// Provisioned-size quotas, in MiB.
#[derive(Debug, Clone)]
pub struct Quotas {
    /// The quota of an owner not listed in `owners`.
    pub default_mib: u64,
    /// Per-owner quotas.
    pub owners: BTreeMap<Owner, u64>,
}

impl Quotas {
    /// The quota of `owner`, in MiB.
    pub fn limit_mib(&self, owner: &Owner) -> u64 {
        self.owners.get(owner).copied().unwrap_or(self.default_mib)
    }
}

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// The `backup:` section.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Where backups go.
    pub target: TargetConfig,
    /// The block size, in MiB.
    pub block_size_mib: u32,
    /// The zstd level.
    pub compression_level: i32,
    /// How many blocks are in flight at once.
    pub concurrency: usize,
    /// A file holding the 32-byte encryption key (hex or raw), if backups
    /// are encrypted.
    pub encryption_key_file: Option<PathBuf>,
    /// How long an unreferenced block must be old before `gc` removes it,
    /// in seconds (protects blocks of a backup still running).
    pub gc_grace_secs: u64,
    /// Scheduled backups.
    pub schedules: Vec<ScheduleConfig>,
}

/// Where backups go.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    /// An S3-compatible bucket.
    S3(S3Config),
    /// A local folder (for development and single hosts).
    Fs {
        /// The folder.
        path: PathBuf,
    },
}

/// An S3-compatible bucket.
#[derive(Clone)]
pub struct S3Config {
    /// The endpoint URL (`http://127.0.0.1:9000`).
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (`host-a/`), or empty.
    pub prefix: String,
    /// Path-style addressing (most self-hosted servers need it).
    pub path_style: bool,
    /// The access key.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A scheduled backup of one owner's volume.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The volume's owner.
    pub owner: Owner,
    /// The volume.
    pub volume: VolumeName,
    /// A cron expression with seconds (`0 0 3 * * *`) or without
    /// (`0 3 * * *`).
    pub cron: String,
    /// How many of this volume's backups to keep (the newest).
    pub keep: usize,
}

// ---- the raw YAML shape -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tokens: Vec<RawToken>,
    pools: Option<BTreeMap<String, RawPool>>,
    default_pool: Option<String>,
    #[serde(default)]
    quotas: RawQuotas,
    backup: Option<RawBackup>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    socket: Option<PathBuf>,
    tcp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    owner: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_sha256: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
struct RawPool {
    driver: String,
    #[serde(flatten)]
    options: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuotas {
    #[serde(default = "default_quota_mib")]
    default_mib: u64,
    #[serde(default)]
    owners: BTreeMap<String, u64>,
}

impl Default for RawQuotas {
    fn default() -> Self {
        Self {
            default_mib: default_quota_mib(),
            owners: BTreeMap::new(),
        }
    }
}

fn default_quota_mib() -> u64 {
    DEFAULT_QUOTA_MIB
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    target: String,
    s3: Option<RawS3>,
    fs: Option<RawFs>,
    block_size_mib: Option<u32>,
    compression_level: Option<i32>,
    concurrency: Option<usize>,
    encryption_key_file: Option<PathBuf>,
    gc_grace_secs: Option<u64>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: String,
    #[serde(default = "default_region")]
    region: String,
    bucket: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    path_style: bool,
    access_key_id: String,
    secret_access_key: Option<String>,
    secret_access_key_file: Option<PathBuf>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFs {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    owner: String,
    volume: String,
    cron: String,
    keep: usize,
}

/// The default per-owner quota: 20 GiB provisioned.
pub const DEFAULT_QUOTA_MIB: u64 = 20480;
/// The default request body limit: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The default backup block size, in MiB.
pub const DEFAULT_BLOCK_SIZE_MIB: u32 = 4;
/// The default zstd level.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
/// The default number of blocks in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The default gc grace period: one day.
pub const DEFAULT_GC_GRACE_SECS: u64 = 86_400;
/// The name of the pool of the embedded default configuration.
pub const DEFAULT_POOL: &str = "default";

fn cfg_err(key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Reads and checks a config file; a YAML error names the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            operation: "read config",
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, &path.display().to_string())
    }

    /// Parses and checks config text; relative paths in it are taken
    /// against `base`, and a YAML error names the text as `label` (the
    /// file it came from).
    pub fn parse(text: &str, base: &Path, label: &str) -> Result<Self> {
        // serde_yaml's message puts the key path first ("pools.x: unknown
        // field"), the form every other config error has, and ends with
        // the position ("at line 6 column 1").
        let raw: RawConfig =
            serde_yaml::from_str(text).map_err(|e| cfg_err(label, e.to_string()))?;
        Self::from_raw(raw, base)
    }

    /// The embedded default: one ext4-file pool under `data_dir`, the
    /// socket `data_dir/kiln.sock`, no TCP, no backups.
    pub fn embedded(data_dir: &Path) -> Self {
        let pool = PoolName::new(DEFAULT_POOL).expect("the default pool name follows the rule");
        let mut pools = BTreeMap::new();
        pools.insert(
            pool.clone(),
            PoolConfig {
                name: pool.clone(),
                driver: "ext4-file".to_string(),
                options: serde_json::json!({ "path": data_dir.join("volumes") }),
            },
        );
        Self {
            data_dir: data_dir.to_path_buf(),
            listen: Listen {
                socket: data_dir.join("kiln.sock"),
                tcp: None,
            },
            tokens: Vec::new(),
            pools,
            default_pool: pool,
            quotas: Quotas {
                default_mib: DEFAULT_QUOTA_MIB,
                owners: BTreeMap::new(),
            },
            backup: None,
            limits: Limits {
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            },
        }
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<Self> {
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let data_dir = abs(raw
            .data_dir
            .ok_or_else(|| cfg_err("data_dir", "is required"))?);

        let socket = abs(raw
            .listen
            .socket
            .unwrap_or_else(|| data_dir.join("kiln.sock")));
        let tcp = match raw.listen.tcp {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|e| {
                cfg_err("listen.tcp", format!("{s:?} is not an address:port ({e})"))
            })?),
        };

        let mut tokens = Vec::new();
        for (i, t) in raw.tokens.into_iter().enumerate() {
            let key = format!("tokens[{i}]");
            let owner =
                Owner::new(&t.owner).map_err(|e| cfg_err(format!("{key}.owner"), e.to_string()))?;
            let secret = match (t.token, t.token_file, t.token_sha256) {
                (Some(tok), None, None) => hash_token(&key, &tok)?,
                (None, Some(file), None) => {
                    let file = abs(file);
                    let tok = std::fs::read_to_string(&file).map_err(|e| {
                        cfg_err(
                            format!("{key}.token_file"),
                            format!("{}: {e}", file.display()),
                        )
                    })?;
                    hash_token(&key, tok.trim())?
                }
                (None, None, Some(hex)) => {
                    TokenSecret::Sha256(parse_sha256(&hex).ok_or_else(|| {
                        cfg_err(format!("{key}.token_sha256"), "must be 64 hex digits")
                    })?)
                }
                _ => {
                    return Err(cfg_err(
                        key,
                        "needs exactly one of token, token_file, token_sha256",
                    ))
                }
            };
            tokens.push(TokenConfig {
                owner,
                secret,
                admin: t.admin,
            });
        }
        refuse_shared_tokens(&tokens)?;
        if tcp.is_some() && tokens.is_empty() {
            return Err(cfg_err(
                "listen.tcp",
                "a TCP listener requires at least one entry in tokens",
            ));
        }

        let raw_pools = raw
            .pools
            .ok_or_else(|| cfg_err("pools", "at least one pool is required"))?;
        if raw_pools.is_empty() {
            return Err(cfg_err("pools", "at least one pool is required"));
        }
        let mut pools = BTreeMap::new();
        for (name, p) in raw_pools {
            let pname = PoolName::new(&name)
                .map_err(|e| cfg_err(format!("pools.{name}"), e.to_string()))?;
            let mut options = serde_json::Map::new();
            for (k, v) in p.options {
                let v = serde_json::to_value(v)
                    .map_err(|e| cfg_err(format!("pools.{name}.{k}"), e.to_string()))?;
                options.insert(k, v);
            }
            if p.driver.trim().is_empty() {
                return Err(cfg_err(format!("pools.{name}.driver"), "must not be empty"));
            }
            pools.insert(
                pname.clone(),
                PoolConfig {
                    name: pname,
                    driver: p.driver,
                    options: serde_json::Value::Object(options),
                },
            );
        }

        let default_pool = match raw.default_pool {
            Some(d) => {
                let d = PoolName::new(&d).map_err(|e| cfg_err("default_pool", e.to_string()))?;
                if !pools.contains_key(&d) {
                    return Err(cfg_err(
                        "default_pool",
                        format!("{d:?} is not a configured pool"),
                    ));
                }
                d
            }
            None if pools.len() == 1 => pools
                .keys()
                .next()
                .cloned()
                .expect("pools has exactly one entry"),
            None => {
                return Err(cfg_err(
                    "default_pool",
                    "is required when more than one pool is configured",
                ))
            }
        };

        let mut owners = BTreeMap::new();
        for (o, mib) in raw.quotas.owners {
            let owner =
                Owner::new(&o).map_err(|e| cfg_err(format!("quotas.owners.{o}"), e.to_string()))?;
            owners.insert(owner, mib);
        }
        let quotas = Quotas {
            default_mib: raw.quotas.default_mib,
            owners,
        };

        let backup = raw.backup.map(|b| parse_backup(b, &abs)).transpose()?;

        let max_body_bytes = raw.limits.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(cfg_err("limits.max_body_bytes", "must be at least 1024"));
        }

        Ok(Self {
            data_dir,
            listen: Listen { socket, tcp },
            tokens,
            pools,
            default_pool,
            quotas,
            backup,
            limits: Limits { max_body_bytes },
        })
    }
}

fn parse_backup(b: RawBackup, abs: &dyn Fn(PathBuf) -> PathBuf) -> Result<BackupConfig> {
    let target = match b.target.as_str() {
        "s3" => {
            let s =
                b.s3.ok_or_else(|| cfg_err("backup.s3", "is required when backup.target is s3"))?;
            let secret = match (s.secret_access_key, s.secret_access_key_file) {
                (Some(k), None) => k,
                (None, Some(f)) => {
                    let f = abs(f);
                    std::fs::read_to_string(&f)
                        .map_err(|e| {
                            cfg_err(
                                "backup.s3.secret_access_key_file",
                                format!("{}: {e}", f.display()),
                            )
                        })?
                        .trim()
                        .to_string()
                }
                _ => {
                    return Err(cfg_err(
                        "backup.s3",
                        "needs exactly one of secret_access_key, secret_access_key_file",
                    ))
                }
            };
            if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")) {
                return Err(cfg_err(
                    "backup.s3.endpoint",
                    "must start with http:// or https://",
                ));
            }
            if s.bucket.is_empty() {
                return Err(cfg_err("backup.s3.bucket", "must not be empty"));
            }
            TargetConfig::S3(S3Config {
                endpoint: s.endpoint,
                region: s.region,
                bucket: s.bucket,
                prefix: s.prefix,
                path_style: s.path_style,
                access_key_id: s.access_key_id,
                secret_access_key: secret,
            })
        }
        "fs" => {
            let f =
                b.fs.ok_or_else(|| cfg_err("backup.fs", "is required when backup.target is fs"))?;
            TargetConfig::Fs { path: abs(f.path) }
        }
        other => {
            return Err(cfg_err(
                "backup.target",
                format!("{other:?} is not a target (expected s3 or fs)"),
            ))
        }
    };
    let block_size_mib = b.block_size_mib.unwrap_or(DEFAULT_BLOCK_SIZE_MIB);
    if !(1..=64).contains(&block_size_mib) {
        return Err(cfg_err("backup.block_size_mib", "must be from 1 to 64"));
    }
    let compression_level = b.compression_level.unwrap_or(DEFAULT_COMPRESSION_LEVEL);
    if !(1..=19).contains(&compression_level) {
        return Err(cfg_err("backup.compression_level", "must be from 1 to 19"));
    }
    let concurrency = b.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=256).contains(&concurrency) {
        return Err(cfg_err("backup.concurrency", "must be from 1 to 256"));
    }
    let mut schedules = Vec::new();
    for (i, s) in b.schedules.into_iter().enumerate() {
        let key = format!("backup.schedules[{i}]");
        let owner =
            Owner::new(&s.owner).map_err(|e| cfg_err(format!("{key}.owner"), e.to_string()))?;
        let volume = VolumeName::new(&s.volume)
            .map_err(|e| cfg_err(format!("{key}.volume"), e.to_string()))?;
        if s.keep == 0 {
            return Err(cfg_err(format!("{key}.keep"), "must be at least 1"));
        }
        if s.cron.split_whitespace().count() < 5 {
            return Err(cfg_err(
                format!("{key}.cron"),
                format!("{:?} is not a cron expression", s.cron),
            ));
        }
        schedules.push(ScheduleConfig {
            owner,
            volume,
            cron: s.cron,
            keep: s.keep,
        });
    }
    Ok(BackupConfig {
        target,
        block_size_mib,
        compression_level,
        concurrency,
        encryption_key_file: b.encryption_key_file.map(abs),
        gc_grace_secs: b.gc_grace_secs.unwrap_or(DEFAULT_GC_GRACE_SECS),
        schedules,
    })
}

/// A token in two entries would always act as the first entry's owner:
/// refuse it, naming both entries.
fn refuse_shared_tokens(tokens: &[TokenConfig]) -> Result<()> {
    for (j, later) in tokens.iter().enumerate() {
        let TokenSecret::Sha256(hash) = &later.secret;
        let first = tokens[..j].iter().position(|t| {
            let TokenSecret::Sha256(other) = &t.secret;
            other == hash
        });
        if let Some(i) = first {
            return Err(cfg_err(
                format!("tokens[{j}]"),
                format!(
                    "has the same token as tokens[{i}] (owners {} and {}); \
                     each token must be in one entry only",
                    later.owner, tokens[i].owner
                ),
            ));
        }
    }
    Ok(())
}

fn hash_token(key: &str, token: &str) -> Result<TokenSecret> {
    use sha2::Digest;
    if token.len() < 16 {
        return Err(cfg_err(
            format!("{key}.token"),
            "must be at least 16 characters",
        ));
    }
    Ok(TokenSecret::Sha256(
        sha2::Sha256::digest(token.as_bytes()).into(),
    ))
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/kiln"), "/etc/kiln/config.yaml")
    }

    const MINIMAL: &str = "data_dir: /var/lib/kiln\npools:\n  default:\n    driver: ext4-file\n    path: /var/lib/kiln/volumes\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.default_pool.as_str(), "default");
        assert_eq!(c.listen.socket, Path::new("/var/lib/kiln/kiln.sock"));
        assert_eq!(c.quotas.default_mib, DEFAULT_QUOTA_MIB);
        assert!(c.backup.is_none());
        assert_eq!(
            c.pools[&c.default_pool].options["path"],
            "/var/lib/kiln/volumes"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(&format!("{MINIMAL}colour: blue\n")).expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
        let err = parse(&format!("{MINIMAL}listen:\n  sockett: /x\n")).expect_err("unknown key");
        assert!(err.to_string().contains("sockett"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse(&format!("{MINIMAL}listen:\n  tcp: nowhere\n")).expect_err("bad addr");
        assert!(err.to_string().contains("listen.tcp"), "{err}");
        let err = parse(&format!("{MINIMAL}listen:\n  tcp: 127.0.0.1:7480\n"))
            .expect_err("tcp without tokens");
        assert!(err.to_string().contains("tokens"), "{err}");
        let err = parse(&format!("{MINIMAL}default_pool: fast\n")).expect_err("no such pool");
        assert!(err.to_string().contains("default_pool"), "{err}");
        let err = parse(&format!(
            "{MINIMAL}tokens:\n  - owner: a\n    token: short\n"
        ))
        .expect_err("short token");
        assert!(err.to_string().contains("tokens[0].token"), "{err}");
    }

    #[test]
    fn backup_section_is_checked() {
        let ok = parse(&format!(
            "{MINIMAL}backup:\n  target: fs\n  fs:\n    path: backups\n"
        ))
        .expect("valid");
        match ok.backup.map(|b| b.target) {
            Some(TargetConfig::Fs { path }) => assert_eq!(path, Path::new("/etc/kiln/backups")),
            other => panic!("unexpected {other:?}"),
        }
        let err = parse(&format!("{MINIMAL}backup:\n  target: s3\n")).expect_err("no s3");
        assert!(err.to_string().contains("backup.s3"), "{err}");
        let err = parse(&format!("{MINIMAL}backup:\n  target: ftp\n")).expect_err("bad target");
        assert!(err.to_string().contains("backup.target"), "{err}");
    }

    #[test]
    fn yaml_errors_name_the_file_and_say_the_position_once() {
        let err = parse(&format!("{MINIMAL}colour: blue\n")).expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.starts_with("config: /etc/kiln/config.yaml: unknown field `colour`"),
            "{text}"
        );
        assert_eq!(text.matches("line 6").count(), 1, "{text}");
        assert!(!text.contains("(line"), "{text}");

        let dir = tempfile::tempdir().expect("a temporary folder");
        let file = dir.path().join("kiln-other.yaml");
        std::fs::write(&file, "data_dir: [\n").expect("write the config");
        let err = Config::load(&file).expect_err("bad YAML");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("config: {}: ", file.display())),
            "{text}"
        );
        assert!(!text.contains("config.yaml"), "{text}");
    }

    #[test]
    fn a_token_in_two_entries_is_refused_naming_both() {
        let token = "0123456789abcdef0123";
        let err = parse(&format!(
            "{MINIMAL}tokens:\n  - owner: a\n    token: {token}\n  - owner: c\n    token: another-token-0000\n  - owner: b\n    token: {token}\n"
        ))
        .expect_err("a shared token");
        let text = err.to_string();
        assert!(text.starts_with("config: tokens[2]: "), "{text}");
        assert!(text.contains("tokens[0]"), "{text}");
        assert!(text.contains("owners b and a"), "{text}");

        // The same token given as its SHA-256 is the same token.
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let err = parse(&format!(
            "{MINIMAL}tokens:\n  - owner: a\n    token: {token}\n  - owner: b\n    token_sha256: {hex}\n"
        ))
        .expect_err("a shared token");
        assert!(err.to_string().contains("tokens[1]"), "{err}");
        assert!(err.to_string().contains("tokens[0]"), "{err}");

        let ok = parse(&format!(
            "{MINIMAL}tokens:\n  - owner: a\n    token: {token}\n  - owner: a\n    token: another-token-0000\n"
        ))
        .expect("two tokens of one owner");
        assert_eq!(ok.tokens.len(), 2);
    }

    #[test]
    fn embedded_default_is_one_ext4_file_pool() {
        let c = Config::embedded(Path::new("/d"));
        assert_eq!(c.pools.len(), 1);
        assert_eq!(c.pools[&c.default_pool].driver, "ext4-file");
        assert_eq!(c.listen.socket, Path::new("/d/kiln.sock"));
    }
}
