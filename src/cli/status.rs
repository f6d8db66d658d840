//! `yizhan status`: what an operator wants to know at a glance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::{open_db, Output};
use crate::config::Config;
use crate::db::DbError;
use crate::outbox::{self, Backlog};
use crate::{clock, manifest, parcel};

#[derive(Serialize)]
struct Status {
    version: &'static str,
    station_id: String,
    device_id: String,
    database: String,
    daemon: &'static str,
    parcels: Vec<(String, i64)>,
    overdue_parcels: i64,
    pickup_sla_h: u32,
    outbox: Backlog,
    manifest_entries: i64,
    manifest_cursor: Option<String>,
}

pub fn run(config: &Config, out: Output) -> Result<()> {
    let db = open_db(config, false)?;
    let sla = config.station.pickup_sla_h;
    let cutoff = clock::format(chrono::Utc::now() - chrono::Duration::hours(i64::from(sla)));
    let (parcels, overdue, backlog, (manifest_entries, manifest_cursor)) =
        db.read_blocking(|c| {
            Ok::<_, DbError>((
                parcel::store::counts(c)?,
                parcel::store::overdue(c, &cutoff)?,
                outbox::backlog(c)?,
                manifest::summary(c)?,
            ))
        })?;
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        station_id: config.station.id.clone(),
        device_id: config.station.device_id.clone(),
        database: config.db_path().display().to_string(),
        daemon: if daemon_answers(config.api.listen) {
            "running"
        } else {
            "not reachable"
        },
        parcels: parcels
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect(),
        overdue_parcels: overdue,
        pickup_sla_h: sla,
        outbox: backlog,
        manifest_entries,
        manifest_cursor,
    };
    out.print(&status, print_human)
}

fn print_human(s: &Status) {
    println!(
        "yizhan {} — station {} device {}",
        s.version, s.station_id, s.device_id
    );
    println!("daemon:    {} ({})", s.daemon, s.database);
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
    println!(
        "manifest:  {} return(s){}",
        s.manifest_entries,
        s.manifest_cursor
            .as_ref()
            .map(|c| format!(", cursor {c}"))
            .unwrap_or_default()
    );
}

/// Whether the daemon's API answers `/healthz` with 200.
fn daemon_answers(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let timeout = Duration::from_millis(500);
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.ends_with(b"200"))
    };
    probe().unwrap_or(false)
}
