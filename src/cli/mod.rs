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
mod verify;

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
    ///
    /// Configuration: the embedded defaults, then the file given with
    /// --config (or YIZHAN_CONFIG; the package installs
    /// /etc/yizhan/yizhan.toml), then environment variables
    /// YIZHAN_<SECTION>__<KEY>, which override both (e.g.
    /// YIZHAN_API__LISTEN=0.0.0.0:8080, YIZHAN_STORAGE__DATA_DIR=/srv/yizhan,
    /// YIZHAN_LOG__LEVEL=debug). `yizhan config check` shows what was read.
    ///
    /// Data: everything lives in storage.data_dir (default `data` under the
    /// working directory; the package uses /var/lib/yizhan): the database
    /// yizhan.db, photos/, device.key, operator.token and backups/. The
    /// first log line says which data directory and address are in use.
    ///
    /// Stops cleanly on SIGTERM or SIGINT (a second signal stops at once).
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
    /// Check a receipt (YZK1) or handover (YZH1) token offline against the
    /// station's key and say what it proves; fails with the reason when it
    /// proves nothing (altered, another key, another station, damaged).
    Verify {
        /// The token, as scanned from the receipt or the courier's slip.
        token: String,
        /// Another station's public key (base64, as `yizhan identity`
        /// prints it) instead of this one's.
        #[arg(long, requires = "station")]
        key: Option<String>,
        /// The station id the token must name (with --key).
        #[arg(long, requires = "key")]
        station: Option<String>,
    },
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

/// The command line, with `help run` saying what this invocation would
/// use: the config file, the data directory, the address, the overrides.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let asks_help = std::env::args_os().any(|a| a == "help" || a == "--help" || a == "-h");
    if !asks_help {
        return Cli::command();
    }
    Cli::command().mut_subcommand("run", |run| run.after_long_help(run_context()))
}

/// Parses the process's arguments (exits on `--help` or a usage error, as
/// clap does).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

fn run_context() -> String {
    let file = config_arg();
    let overrides: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("YIZHAN_") && k.contains("__"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let read = file.as_ref().map_or_else(
        || "the embedded defaults".to_owned(),
        |f| f.display().to_string(),
    );
    let overrides = if overrides.is_empty() {
        "none".to_owned()
    } else {
        overrides.join(", ")
    };
    let used = match Config::load(file.as_deref()) {
        Ok(c) => {
            let dir = &c.storage.data_dir;
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            format!(
                "  data:      {}\n  API:       http://{}/",
                dir.display(),
                c.api.listen
            )
        }
        Err(_) => "  refused:   run `yizhan config check` to see why".to_owned(),
    };
    format!(
        "With this command line and environment:\n  config:    {read}\n  overrides: {overrides}\n{used}"
    )
}

/// The `--config`/`-c` argument, else `YIZHAN_CONFIG`.
fn config_arg() -> Option<PathBuf> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    for (i, arg) in args.iter().enumerate() {
        let text = arg.to_string_lossy();
        if text == "--config" || text == "-c" {
            return args.get(i + 1).map(PathBuf::from);
        }
        if let Some(v) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("YIZHAN_CONFIG").map(PathBuf::from)
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
        Command::Run => run(config, cli.config.clone()),
        Command::Status => status::run(&config, cli.config.as_deref(), out),
        Command::Parcels(cmd) => parcels::run(&config, cmd, out),
        Command::Outbox(cmd) => outbox::run(&config, cmd, out),
        Command::Identity => identity::run(&config, out),
        Command::Verify {
            token,
            key,
            station,
        } => verify::run(
            &config,
            verify::Args {
                token,
                key,
                station,
            },
            out,
        ),
        Command::Db(cmd) => db::run(&config, cmd, out),
        Command::Manifest(cmd) => manifest::run(&config, cmd, out),
        Command::Clerk(cmd) => clerk::run(&config, cmd, out),
        Command::Config(_) => unreachable!("handled above"),
    }
}

fn run(config: Config, file: Option<PathBuf>) -> Result<()> {
    crate::logging::init(config.log.format, &config.log.level);
    let diagnostics = diagnostics_probe(config.clone(), file);
    crate::photo::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::daemon::run(config, Some(diagnostics)))?;
    Ok(())
}

/// What `diagnostics.upload` sends of the CLI's own reports: exactly what
/// `yizhan status --json` and `yizhan db check --json` print (each an
/// `{"error": …}` when it cannot be made).
///
/// The daemon passes the address it actually serves on (`api.listen` may
/// say port 0), so that `status` finds it.
fn diagnostics_probe(config: Config, file: Option<PathBuf>) -> crate::daemon::DiagnosticsProbe {
    std::sync::Arc::new(move |serving| {
        let mut config = config.clone();
        config.api.listen = serving;
        let or_error = |r: Result<serde_json::Value>| {
            r.unwrap_or_else(|e| serde_json::json!({ "error": format!("{e:#}") }))
        };
        let status = or_error(status::json(&config, file.as_deref()));
        let check = or_error(open_db(&config, false).and_then(|db| db::check_json(&config, &db)));
        serde_json::json!({ "status": status, "db_check": check })
    })
}

/// A command's failure that scripts can tell apart (`--json` gives its
/// code); other errors keep their own types.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An argument that cannot be used.
    #[error("{0}")]
    BadArgument(String),
    /// A check ran and found problems (they were printed).
    #[error("{0}")]
    CheckFailed(String),
    /// The failure was already printed in full (as JSON); only the exit
    /// code is left to set.
    #[error("failed")]
    Reported,
}

impl CliError {
    /// The `code` of its `--json` error.
    pub fn code(&self) -> &'static str {
        match self {
            CliError::NotFound(_) => "not_found",
            CliError::BadArgument(_) => "bad_argument",
            CliError::CheckFailed(_) => "check_failed",
            CliError::Reported => "failed",
        }
    }
}

/// Prints a failed command's error: each cause once, in order (a cause
/// whose words its context already quotes is not said again). With
/// `--json`, `{"error":{"code","message"}}` on stdout.
pub fn report(err: &anyhow::Error, json: bool) {
    if matches!(err.downcast_ref::<CliError>(), Some(CliError::Reported)) {
        return;
    }
    let message = message_of(err);
    if json {
        println!(
            "{}",
            serde_json::json!({ "error": { "code": code_of(err), "message": message } })
        );
    } else {
        eprintln!("error: {message}");
    }
}

/// The error's chain with no cause said twice.
pub fn message_of(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// A stable code for scripts: the first cause in the chain that has one.
fn code_of(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.code();
        }
        if cause.is::<crate::config::ConfigError>() {
            return "config_invalid";
        }
        if cause.is::<crate::db::DbError>() || cause.is::<rusqlite::Error>() {
            return "database";
        }
        if cause.is::<std::io::Error>() {
            return "io";
        }
    }
    "failed"
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

    /// Prints the report of a check that found problems, then fails with
    /// `error`: as text, the report then the error on stderr; with
    /// `--json`, one document, the report with the `error` in it.
    fn print_failed<T: Serialize>(
        self,
        value: &T,
        error: CliError,
        human: impl FnOnce(&T),
    ) -> Result<()> {
        if !self.json {
            human(value);
            return Err(error.into());
        }
        let mut doc = serde_json::to_value(value)?;
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "error".to_owned(),
                serde_json::json!({ "code": error.code(), "message": error.to_string() }),
            );
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        Err(CliError::Reported.into())
    }
}

/// Opens the station database for a CLI command. Unless `create`, a missing
/// database is an error that says where it was looked for.
fn open_db(config: &Config, create: bool) -> Result<Db> {
    let path = config.db_path();
    if !create && !path.exists() {
        return Err(CliError::NotFound(format!(
            "no database at {} (storage.data_dir = {}); has `yizhan run` started here, or is --config missing?",
            path.display(),
            config.storage.data_dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create {}", config.storage.data_dir.display()))?;
    Db::open(&path, &config.backups_dir())
        .with_context(|| format!("cannot open {}", path.display()))
}
