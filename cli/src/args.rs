//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, Subcommand};

use crate::size::parse_size_mib;

/// What `kiln --help` shows after the commands.
const AFTER_HELP: &str = "\
Environment:
  KILN_SOCKET  the daemon's unix socket (default ./kiln-data/kiln.sock)
  KILN_URL     the daemon's TCP address, http://HOST:PORT (selects TCP)
  KILN_TOKEN   the bearer token sent with every request

Exit codes:
  0  done
  1  the daemon refused or failed the request (its message and code are
     printed), a job failed or was cancelled, `backup verify` found damaged
     blocks, or kilnd could not be reached
  2  usage: bad flags or arguments, a bad size or volume spec, or a
     destructive command not confirmed (no terminal and no --yes)";

/// kiln: persistent volumes for sandboxes, managed by kilnd.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Print the API's objects as JSON (lists as a JSON array).
    #[arg(long, global = true)]
    pub json: bool,

    /// The daemon's unix socket.
    #[arg(
        long,
        global = true,
        env = "KILN_SOCKET",
        value_name = "PATH",
        default_value = "./kiln-data/kiln.sock"
    )]
    pub socket: PathBuf,

    /// Talk to the daemon over TCP instead (http://HOST:PORT).
    #[arg(long, global = true, env = "KILN_URL", value_name = "URL")]
    pub url: Option<String>,

    /// Bearer token (needed over TCP; over the socket, none acts as the
    /// local admin).
    #[arg(
        long,
        global = true,
        env = "KILN_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Act for this owner (admins only; sent as ?owner=).
    #[arg(long, global = true, value_name = "O")]
    pub owner: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, resize, clone, delete, back up and restore volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create sandboxes and attach, detach and forget their volumes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Show the pools volumes live in.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Collect unreferenced backup blocks and verify backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Look at and cancel running jobs (backup, restore, gc, verify).
    #[command(subcommand)]
    Job(JobCommand),
}

/// `kiln volume ...`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume with a fresh ext4 filesystem.
    Create {
        /// The volume's name.
        #[arg(long)]
        name: String,
        /// Its size: MiB, or with a unit (512M, 5G, 1.5G, 1T).
        #[arg(long, value_parser = parse_size_mib, allow_hyphen_values = true)]
        size: u64,
        /// The pool (default: the daemon's default pool).
        #[arg(long)]
        pool: Option<String>,
    },
    /// List volumes with their attachments.
    List,
    /// Show one volume.
    Get {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Delete a detached volume and its data (asks first).
    Delete {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
    /// Grow a detached volume and its filesystem.
    Resize {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// The new, larger size: MiB, or with a unit (512M, 5G).
        #[arg(long, value_parser = parse_size_mib, allow_hyphen_values = true)]
        size: u64,
    },
    /// Copy a detached volume into a new, independent one.
    Clone {
        /// The volume to copy.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        source: String,
        /// The copy's name.
        #[arg(long)]
        name: String,
    },
    /// Back up a volume (a job; followed unless --no-wait).
    Backup {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Print the job and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// List a volume's backups, newest first.
    BackupList {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Restore a backup, in place (asks first) or into a new volume.
    Restore {
        /// The volume the backup was taken of.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// The backup to restore.
        #[arg(long, value_name = "ID")]
        backup_id: String,
        /// Restore into this new volume instead of replacing NAME.
        #[arg(long, value_name = "NEW")]
        to: Option<String>,
        /// Do not ask before replacing NAME's content.
        #[arg(long, short)]
        yes: bool,
        /// Print the job and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete one of a volume's backups (asks first).
    BackupDelete {
        /// The volume's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// The backup's id.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
}

/// `kiln sandbox ...`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox and attach its volumes (all or none).
    Create {
        /// The sandbox's name.
        #[arg(long)]
        name: String,
        /// A volume to attach: VOL:/mount, VOL:/mount:ro or VOL:/mount:rw
        /// (repeat for several).
        #[arg(long = "volume", value_name = "VOL:/mount[:ro]", value_parser = VolumeSpec::parse)]
        volumes: Vec<VolumeSpec>,
    },
    /// List sandboxes.
    List,
    /// Show one sandbox with its volumes' device paths.
    Get {
        /// The sandbox's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Detach a sandbox's volumes, keeping the sandbox and its list.
    Stop {
        /// The sandbox's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Attach a stopped sandbox's volumes again.
    Start {
        /// The sandbox's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Detach a sandbox's volumes and forget it (asks first).
    Destroy {
        /// The sandbox's name.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
}

/// `kiln pool ...`
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// List pools: driver, capacity, use, provisioned size, unmanaged images.
    List,
}

/// `kiln backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Delete backup blocks no backup references (a job).
    Gc {
        /// Print the job and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Read and check every block of a backup (a job); exit 1 if any is
    /// damaged.
    Verify {
        /// The backup's id.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
        /// Print the job and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

/// `kiln job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Show a job.
    Get {
        /// The job's id.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
    },
    /// Ask the daemon to cancel a running job.
    Cancel {
        /// The job's id.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
    },
}

/// One `--volume VOL:/mount[:ro]` of `sandbox create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The volume's name.
    pub volume: String,
    /// Where it appears in the guest.
    pub mount: String,
    /// Whether the sandbox may only read.
    pub read_only: bool,
}

impl VolumeSpec {
    /// Parses `VOL:/mount`, `VOL:/mount:ro` or `VOL:/mount:rw`.
    ///
    /// Only the shape is checked here; the daemon judges the name and the
    /// mount path (no `..`, no system folders).
    pub fn parse(text: &str) -> Result<VolumeSpec, String> {
        let shape = "expected VOL:/mount, VOL:/mount:ro or VOL:/mount:rw";
        let Some((volume, rest)) = text.split_once(':') else {
            return Err(format!("volume spec {text:?} has no mount path; {shape}"));
        };
        if volume.is_empty() {
            return Err(format!("volume spec {text:?} has no volume name; {shape}"));
        }
        let (mount, read_only) = if let Some(mount) = rest.strip_suffix(":ro") {
            (mount, true)
        } else if let Some(mount) = rest.strip_suffix(":rw") {
            (mount, false)
        } else {
            (rest, false)
        };
        if mount.is_empty() {
            return Err(format!("volume spec {text:?} has no mount path; {shape}"));
        }
        if !mount.starts_with('/') {
            return Err(format!(
                "volume spec {text:?}: mount path {mount:?} must be absolute (start with /)"
            ));
        }
        if mount.contains(':') {
            return Err(format!(
                "volume spec {text:?}: unknown mode after the mount path; {shape}"
            ));
        }
        Ok(VolumeSpec {
            volume: volume.to_owned(),
            mount: mount.to_owned(),
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn spec(volume: &str, mount: &str, read_only: bool) -> VolumeSpec {
        VolumeSpec {
            volume: volume.into(),
            mount: mount.into(),
            read_only,
        }
    }

    #[test]
    fn volume_specs_parse_with_and_without_a_mode() {
        assert_eq!(
            VolumeSpec::parse("data:/data"),
            Ok(spec("data", "/data", false))
        );
        assert_eq!(
            VolumeSpec::parse("data:/data:ro"),
            Ok(spec("data", "/data", true))
        );
        assert_eq!(
            VolumeSpec::parse("data:/data:rw"),
            Ok(spec("data", "/data", false))
        );
        assert_eq!(
            VolumeSpec::parse("cache.v2:/var/cache/app"),
            Ok(spec("cache.v2", "/var/cache/app", false))
        );
    }

    #[test]
    fn bad_volume_specs_are_refused_with_the_reason() {
        let cases = [
            ("data", "no mount path"),
            (":/data", "no volume name"),
            ("data:", "no mount path"),
            ("data::ro", "no mount path"),
            ("data:data", "must be absolute"),
            ("data:relative/x:ro", "must be absolute"),
            ("data:/data:rx", "unknown mode"),
        ];
        for (text, reason) in cases {
            let err = VolumeSpec::parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_are_parsed_by_clap() {
        let cli =
            Cli::try_parse_from(["kiln", "volume", "create", "--name", "a", "--size", "1.5G"])
                .expect("valid command line");
        match cli.command {
            Command::Volume(VolumeCommand::Create { size, .. }) => assert_eq!(size, 1536),
            other => panic!("parsed as {other:?}"),
        }
        let err = Cli::try_parse_from(["kiln", "volume", "create", "--name", "a", "--size", "-1G"])
            .expect_err("negative size");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("negative"), "{err}");
    }

    #[test]
    fn empty_names_in_the_path_are_usage_errors() {
        // An empty name would make the request path another route
        // (`DELETE /v1/volumes/`), so it never reaches the daemon.
        for args in [
            &["volume", "get", ""][..],
            &["volume", "delete", "", "--yes"],
            &["volume", "resize", "", "--size", "5G"],
            &["volume", "clone", "", "--name", "b"],
            &["volume", "backup-delete", "a", "", "--yes"],
            &["sandbox", "destroy", "", "--yes"],
            &["backup", "verify", ""],
            &["job", "get", ""],
        ] {
            let err = Cli::try_parse_from(std::iter::once("kiln").chain(args.iter().copied()))
                .expect_err("an empty name");
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn repeated_volume_flags_collect_in_order() {
        let cli = Cli::try_parse_from([
            "kiln", "sandbox", "create", "--name", "sb1", "--volume", "a:/a", "--volume", "b:/b:ro",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Sandbox(SandboxCommand::Create { volumes, .. }) => {
                assert_eq!(volumes, vec![spec("a", "/a", false), spec("b", "/b", true)]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
