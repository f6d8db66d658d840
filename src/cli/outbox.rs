//! `yizhan outbox pending|show`.

use anyhow::{anyhow, Result};

use super::{open_db, OutboxCommand, Output};
use crate::config::Config;
use crate::outbox::{self, Filter};

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
        OutboxCommand::Show { event } => {
            let record = db
                .read_blocking(|c| outbox::get(c, &event))?
                .ok_or_else(|| anyhow!("no event with seq or id {event:?}"))?;
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
