//! `yizhan outbox pending|show|dead|retry`.

use anyhow::Result;
use serde::Serialize;

use super::{CliError, OutboxCommand, Output, open_db};
use crate::config::Config;
use crate::db::{DbError, Durability};
use crate::outbox::{self, EventRecord, Filter};
use crate::sync::queue::{self, PhotoUpload};

#[derive(Serialize)]
struct Dead {
    events: Vec<EventRecord>,
    photos: Vec<PhotoUpload>,
}

pub fn run(config: &Config, cmd: OutboxCommand, out: Output) -> Result<()> {
    let db = open_db(config, false)?;
    match cmd {
        OutboxCommand::Pending { limit } => {
            let events = db.read_blocking(|c| outbox::list(c, Filter::Pending, limit))?;
            let backlog = db.read_blocking(outbox::backlog)?;
            out.print(&events, |events| {
                println!("{} event(s) pending delivery", backlog.pending_events);
                for e in events {
                    println!(
                        "{:>8}  {}  {:<28} {}  attempts {}",
                        e.seq, e.event_id, e.kind, e.occurred_at, e.attempts
                    );
                }
            })
        }
        OutboxCommand::Dead { limit } => {
            let dead = db.read_blocking(|c| {
                Ok::<_, DbError>(Dead {
                    events: outbox::list(c, Filter::Dead, limit)?,
                    photos: queue::dead_photos(c, limit as usize)?,
                })
            })?;
            out.print(&dead, |d| {
                println!(
                    "{} dead event(s), {} dead photo(s){}",
                    d.events.len(),
                    d.photos.len(),
                    if d.events.is_empty() && d.photos.is_empty() {
                        ""
                    } else {
                        " — fix the cause, then `yizhan outbox retry --all`"
                    }
                );
                for e in &d.events {
                    println!(
                        "{:>8}  {}  {:<28} since {}: {}",
                        e.seq,
                        e.event_id,
                        e.kind,
                        e.dead_at.as_deref().unwrap_or("?"),
                        e.dead_reason.as_deref().unwrap_or("")
                    );
                }
                for p in &d.photos {
                    println!(
                        "photo {}  since {}: {}",
                        p.sha256,
                        p.dead_at.as_deref().unwrap_or("?"),
                        p.error.as_deref().unwrap_or("")
                    );
                }
            })
        }
        OutboxCommand::Retry { seq, all } => {
            let which = if all { None } else { seq };
            let requeued =
                db.write_blocking(Durability::Full, |tx| queue::retry_dead(tx, which))?;
            if let (Some(seq), 0) = (which, requeued.events) {
                return Err(CliError::NotFound(format!("event {seq} is not a dead letter")).into());
            }
            out.print(&requeued, |r| {
                println!(
                    "re-queued {} event(s) and {} photo(s) for delivery",
                    r.events, r.photos
                );
            })
        }
        OutboxCommand::Show { event } => {
            let record = db
                .read_blocking(|c| outbox::get(c, &event))?
                .ok_or_else(|| CliError::NotFound(format!("no event with seq or id {event:?}")))?;
            out.print(&record, |r| {
                println!("seq {} {} ({})", r.seq, r.event_id, r.kind);
                println!(
                    "delivered: {}",
                    r.delivered_at.as_deref().unwrap_or("not yet")
                );
                if let Some(dead) = &r.dead_at {
                    println!(
                        "dead letter since {dead}: {}",
                        r.dead_reason.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r.envelope).unwrap_or_default()
                );
            })
        }
    }
}
