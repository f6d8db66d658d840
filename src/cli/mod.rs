//! The command line: one file per subcommand.
//!
//! Every command but `run` opens the same database the daemon uses (WAL and
//! a busy timeout let them share it), prints readable text, or JSON with
//! `--json` for scripts, and returns an error for `main` to report.

mod clerk;
mod config_check;
mod daemon;
mod db;
mod identity;
mod manifest;
mod outbox;
mod parcels;
mod status;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::db::Db;

/// yizhan — the station agent for e-commerce return drop-offs.
///
/// Runs on the kiosk as a daemon (`yizhan run`), keeps every parcel in a
/// local SQLite database, and works fully offline. The other commands
/// inspect and maintain that database while the daemon runs.
#[derive(Debug, Parser)]
#[command(name = "yizhan", version, about, long_about)]
pub struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply;
    /// the package installs /etc/yizhan/yizhan.toml.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "YIZHAN_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the station daemon: local API, kiosk screen, housekeeping.
    Run,
    /// Show the station's state: parcels, outbox backlog, manifest, daemon.
    Status,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List or show parcels.
    #[command(subcommand)]
    Parcels(ParcelsCommand),
    /// Inspect the outbox of events waiting for the platform; list and
    /// retry dead letters.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Show this device's identity and the public key receipts verify with.
    Identity,
    /// Check or back up the database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage the local manifest of authorised returns.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Manage the clerks who log in at the kiosk with a PIN.
    #[command(subcommand)]
    Clerk(ClerkCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClerkCommand {
    /// Add a clerk. The PIN (4-12 digits) is asked for twice without echo,
    /// or read as one line from stdin when that is not a terminal; only its
    /// Argon2 hash is stored.
    Add {
        /// The id the clerk types at the kiosk: 1-32 letters, digits, '-', '_'.
        id: String,
        /// The clerk's name as the console shows it.
        #[arg(long)]
        name: String,
    },
    /// List clerks.
    List,
    /// Disable a clerk: they can no longer log in and their sessions end.
    Disable {
        /// The clerk's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and list every problem (exit 1 if any).
    Check,
}

#[derive(Debug, Subcommand)]
pub enum ParcelsCommand {
    /// List parcels, newest first.
    List {
        /// Only parcels in this state (draft, dropped, accepted, rejected,
        /// handed_over, held, returned_to_customer).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one parcel with its photos.
    Show {
        /// The parcel id (a ULID).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Events not yet delivered, oldest first.
    Pending {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One event with its full envelope.
    Show {
        /// The event's seq number or event_id.
        event: String,
    },
    /// Dead letters: events and photos the platform refused for good.
    Dead {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put dead letters back in the delivery queue (after the platform
    /// side was fixed). The running daemon picks them up within seconds.
    Retry {
        /// Only the dead event with this seq number.
        #[arg(conflicts_with = "all", required_unless_present = "all")]
        seq: Option<i64>,
        /// Every dead event and photo.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Integrity check, outbox sequence check and photo orphan report
    /// (exit 1 if anything is wrong).
    Check,
    /// Write a consistent copy of the live database to FILE.
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Import returns from a JSON file in the platform's manifest shape:
    /// {"returns":[{"return_no","merchant_id","order_no","status",…}],"cursor":…}
    Import {
        /// The manifest JSON file.
        file: PathBuf,
    },
}

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref());
    if let Command::Config(ConfigCommand::Check) = cli.command {
        return config_check::run(config, cli.config.as_deref(), cli.json);
    }
    let config = config.context("configuration refused")?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Run => run(config),
        Command::Status => status::run(&config, out),
        Command::Parcels(cmd) => parcels::run(&config, cmd, out),
        Command::Outbox(cmd) => outbox::run(&config, cmd, out),
        Command::Identity => identity::run(&config, out),
        Command::Db(cmd) => db::run(&config, cmd, out),
        Command::Manifest(cmd) => manifest::run(&config, cmd, out),
        Command::Clerk(cmd) => clerk::run(&config, cmd, out),
        Command::Config(_) => unreachable!("handled above"),
    }
}

fn run(config: Config) -> Result<()> {
    crate::logging::init(config.log.format, &config.log.level);
    crate::photo::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::daemon::run(config))?;
    Ok(())
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Prints `value` as JSON, or calls `human` to print it as text.
    fn print<T: Serialize>(self, value: &T, human: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human(value);
        }
        Ok(())
    }
}

/// Opens the station database for a CLI command. Unless `create`, a missing
/// database is an error that says where it was looked for.
fn open_db(config: &Config, create: bool) -> Result<Db> {
    let path = config.db_path();
    if !create && !path.exists() {
        anyhow::bail!(
            "no database at {} (storage.data_dir = {}); has `yizhan run` started here, or is --config missing?",
            path.display(),
            config.storage.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create {}", config.storage.data_dir.display()))?;
    Db::open(&path, &config.backups_dir())
        .with_context(|| format!("cannot open {}", path.display()))
}
