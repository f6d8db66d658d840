//! `yizhan status`: what an operator wants to know at a glance.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{Output, daemon, open_db};
use crate::config::Config;
use crate::db::DbError;
use crate::outbox::{self, Backlog};
use crate::sync::queue::{self, PhotoBacklog};
use crate::{clock, manifest, parcel};

#[derive(Serialize)]
struct Status {
    version: &'static str,
    station_id: String,
    device_id: String,
    database: String,
    daemon: &'static str,
    /// Where the CLI looked for the daemon (`api.listen`)…
    daemon_address: String,
    /// …which layer of the configuration said so…
    daemon_address_from: String,
    /// …and why it did not answer there.
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon_error: Option<String>,
    parcels: Vec<(String, i64)>,
    overdue_parcels: i64,
    pickup_sla_h: u32,
    outbox: Backlog,
    manifest_entries: i64,
    manifest_cursor: Option<String>,
    photos: PhotoBacklog,
    /// The running daemon's `/api/v1/sync` view; `None` when it does not
    /// answer.
    sync: Option<serde_json::Value>,
    sync_configured: bool,
    /// The kiosk's devices as the running daemon sees them (SPEC §10).
    #[serde(skip_serializing_if = "Option::is_none")]
    devices: Option<serde_json::Value>,
    /// Whether the running daemon trusts its clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    clock: Option<serde_json::Value>,
}

pub fn run(config: &Config, file: Option<&Path>, out: Output) -> Result<()> {
    out.print(&collect(config, file)?, print_human)
}

/// What `yizhan status --json` prints, as JSON (`diagnostics.upload`).
pub fn json(config: &Config, file: Option<&Path>) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(collect(config, file)?)?)
}

fn collect(config: &Config, file: Option<&Path>) -> Result<Status> {
    let listen_from = listen_from(file);
    let db = open_db(config, false)?;
    let sla = config.station.pickup_sla_h;
    let cutoff = clock::format(crate::clock::now() - chrono::Duration::hours(i64::from(sla)));
    let (parcels, overdue, backlog, (manifest_entries, manifest_cursor), photos) = db
        .read_blocking(|c| {
            Ok::<_, DbError>((
                parcel::store::counts(c)?,
                parcel::store::overdue(c, &cutoff)?,
                outbox::backlog(c)?,
                manifest::summary(c)?,
                queue::photo_backlog(c)?,
            ))
        })?;
    let health = daemon::call(config.api.listen, reqwest::Method::GET, "/healthz", None);
    let daemon_error = match &health {
        Ok((200, _)) => None,
        Ok((code, _)) => Some(format!("/healthz answered {code}")),
        Err(e) => Some(e.to_string()),
    };
    let running = daemon_error.is_none();
    let health: Option<serde_json::Value> = health
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, body)| serde_json::from_slice(&body).ok());
    let devices = health.as_ref().and_then(|v| v.get("devices").cloned());
    let clock = health.as_ref().and_then(|v| v.get("clock").cloned());
    // The sync view is for clerks; the daemon's operator token (readable
    // by its own user and root) opens it.
    let token = std::fs::read_to_string(config.operator_token_path()).ok();
    let sync = running
        .then(|| {
            daemon::call(
                config.api.listen,
                reqwest::Method::GET,
                "/api/v1/sync",
                token.as_deref(),
            )
            .ok()
        })
        .flatten()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, body)| serde_json::from_slice(&body).ok());
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        station_id: config.station.id.clone(),
        device_id: config.station.device_id.clone(),
        database: config.db_path().display().to_string(),
        daemon: if running { "running" } else { "not reachable" },
        daemon_address: config.api.listen.to_string(),
        daemon_address_from: listen_from,
        daemon_error,
        parcels: parcels
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect(),
        overdue_parcels: overdue,
        pickup_sla_h: sla,
        outbox: backlog,
        manifest_entries,
        manifest_cursor,
        photos,
        sync,
        sync_configured: config.sync.enabled(),
        devices,
        clock,
    };
    Ok(status)
}

/// Which layer of the configuration set `api.listen`: the environment,
/// the file, or the embedded defaults.
fn listen_from(file: Option<&Path>) -> String {
    if std::env::var_os("YIZHAN_API__LISTEN").is_some() {
        return "YIZHAN_API__LISTEN".to_owned();
    }
    let in_file = file.and_then(|f| {
        let table: toml::Table = std::fs::read_to_string(f).ok()?.parse().ok()?;
        table.get("api")?.get("listen")?;
        Some(f.display().to_string())
    });
    in_file.unwrap_or_else(|| "the embedded defaults".to_owned())
}

fn print_human(s: &Status) {
    println!(
        "yizhan {} — station {} device {}",
        s.version, s.station_id, s.device_id
    );
    match &s.daemon_error {
        None => println!("daemon:    {} on {}", s.daemon, s.daemon_address),
        Some(why) => {
            println!(
                "daemon:    {} at {} (api.listen from {}): {why}",
                s.daemon, s.daemon_address, s.daemon_address_from
            );
            println!(
                "           a daemon listening elsewhere (say YIZHAN_API__LISTEN in its unit) \
                 is not seen: run this with the daemon's --config and environment"
            );
        }
    }
    println!("database:  {}", s.database);
    let parcels: Vec<String> = s
        .parcels
        .iter()
        .map(|(st, n)| format!("{st} {n}"))
        .collect();
    println!(
        "parcels:   {}",
        if parcels.is_empty() {
            "none".to_owned()
        } else {
            parcels.join(", ")
        }
    );
    if s.overdue_parcels > 0 {
        println!(
            "OVERDUE:   {} parcel(s) in custody longer than {} h",
            s.overdue_parcels, s.pickup_sla_h
        );
    }
    let o = &s.outbox;
    println!(
        "outbox:    {} pending{}, {} dead letter(s), last seq {}",
        o.pending_events,
        o.oldest_pending_s
            .map(|a| format!(" (oldest {a} s)"))
            .unwrap_or_default(),
        o.dead_letters,
        o.last_seq
    );
    let p = &s.photos;
    println!(
        "photos:    {} waiting for upload, {} dead letter(s), {} uploaded",
        p.pending_photos, p.dead_photos, p.uploaded_photos
    );
    println!("sync:      {}", sync_line(s));
    if let Some(clock) = &s.clock {
        if clock.get("trusted") == Some(&serde_json::Value::Bool(false)) {
            let reason = clock.get("reason").and_then(serde_json::Value::as_str);
            println!("CLOCK:     NOT TRUSTED: {}", reason.unwrap_or("unknown"));
        } else {
            println!("clock:     trusted");
        }
    }
    if let Some(devices) = s.devices.as_ref().and_then(serde_json::Value::as_object) {
        for (name, d) in devices {
            let text = |k: &str| d.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
            let state = text("state");
            let mut line = format!("{name} ({}) {}", text("kind"), state.to_uppercase());
            if let Some(q) = d.get("queued").and_then(serde_json::Value::as_u64) {
                line.push_str(&format!(", {q} job(s) queued"));
            }
            if !text("detail").is_empty() {
                line.push_str(&format!(": {}", text("detail")));
            }
            println!("device:    {line}");
        }
    }
    println!(
        "manifest:  {} return(s){}",
        s.manifest_entries,
        s.manifest_cursor
            .as_ref()
            .map(|c| format!(", cursor {c}"))
            .unwrap_or_default()
    );
}

fn sync_line(s: &Status) -> String {
    if !s.sync_configured {
        return "no platform configured: offline only, every event kept".into();
    }
    let Some(v) = &s.sync else {
        return "daemon not running: nothing is being delivered".into();
    };
    let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool);
    let text = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
    let mut parts = vec![format!(
        "{} via {}",
        if flag("online") == Some(true) {
            "ONLINE"
        } else {
            "OFFLINE"
        },
        text("events_via").unwrap_or("?")
    )];
    if flag("mqtt_configured") == Some(true) {
        parts.push(format!(
            "mqtt {}",
            if flag("mqtt_connected") == Some(true) {
                "connected"
            } else {
                "down"
            }
        ));
    }
    if let Some(at) = text("last_delivery_at") {
        parts.push(format!("last delivery {at}"));
    }
    for key in ["mqtt_last_error", "https_last_error"] {
        if let Some(e) = text(key) {
            parts.push(format!("{key}: {e}"));
        }
    }
    parts.join(", ")
}
