//! Choosing what to send next, the byte-rate cap, and recording PUBACKs.
//!
//! # Order
//! The backlog goes oldest first. With `sync.max_bytes_per_s` set, the
//! backlog is drained at that rate, but events committed after the session
//! started ("live" events, `seq` above the mark taken at connect) bypass the
//! cap and go out as soon as they are committed: first in line right behind
//! the backlog head, never starved by a week of backlog.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use super::queue::{self, Outgoing};
use crate::db::{DbError, Durability};

/// Cursors over the outbox for one session.
#[derive(Debug)]
pub struct Selector {
    live_mark: i64,
    backlog_after: i64,
    live_after: i64,
    bucket: Option<Bucket>,
}

/// What [`Selector::next`] found.
pub struct Pick {
    pub events: Vec<Outgoing>,
    /// The outbox may hold more right now.
    pub more: bool,
    /// The rate cap holds the backlog back until then.
    pub wait_until: Option<Instant>,
}

impl Selector {
    /// A session starting now: everything up to `live_mark` is backlog.
    pub fn new(live_mark: i64, max_bytes_per_s: u64) -> Selector {
        Selector {
            live_mark,
            backlog_after: 0,
            live_after: live_mark,
            bucket: (max_bytes_per_s > 0).then(|| Bucket::new(max_bytes_per_s)),
        }
    }

    /// Starts again from the head of the outbox (after an operator retry
    /// re-queued older events, or when nothing is in flight).
    pub fn rewind(&mut self) {
        self.backlog_after = 0;
        self.live_after = self.live_mark;
    }

    /// Up to `limit` events to send next.
    pub async fn next(&mut self, ctx: &Ctx, limit: usize) -> Result<Pick, DbError> {
        if limit == 0 {
            return Ok(Pick {
                events: Vec::new(),
                more: true,
                wait_until: None,
            });
        }
        let Some(bucket) = &mut self.bucket else {
            let after = self.backlog_after;
            let events = ctx
                .read(move |c| queue::pending_events(c, after, i64::MAX, limit))
                .await?;
            if let Some(last) = events.last() {
                self.backlog_after = last.seq;
            }
            let more = events.len() == limit;
            return Ok(Pick {
                events,
                more,
                wait_until: None,
            });
        };
        let (live_after, backlog_after, mark) =
            (self.live_after, self.backlog_after, self.live_mark);
        let (mut live, backlog) = ctx
            .read(move |c| {
                let live = queue::pending_events(c, live_after, i64::MAX, limit)?;
                let room = limit - live.len();
                let backlog = queue::pending_events(c, backlog_after, mark, room)?;
                Ok::<_, DbError>((live, backlog))
            })
            .await?;
        if let Some(last) = live.last() {
            self.live_after = last.seq;
        }
        let more_live = live.len() == limit;
        let room = limit - live.len();
        let mut wait_until = None;
        let offered = backlog.len();
        let mut taken = 0;
        for event in backlog {
            if let Some(at) = bucket.take(event.body.len()) {
                wait_until = Some(at);
                break;
            }
            self.backlog_after = event.seq;
            live.push(event);
            taken += 1;
        }
        Ok(Pick {
            events: live,
            more: more_live || (wait_until.is_none() && offered == room && taken == room),
            wait_until,
        })
    }
}

/// A token bucket of bytes: `rate` per second, one second of burst.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate: rate as f64,
            tokens: rate as f64,
            at: Instant::now(),
        }
    }

    /// Takes `n` bytes, or says when they will be there. An event larger
    /// than the whole bucket goes when the bucket is full (and leaves it in
    /// debt), so no event is held back for ever.
    fn take(&mut self, n: usize) -> Option<Instant> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        let need = (n as f64).min(self.rate);
        if self.tokens >= need {
            self.tokens -= n as f64;
            None
        } else {
            let wait = (need - self.tokens) / self.rate;
            Some(now + Duration::from_secs_f64(wait))
        }
    }
}

/// How long acks are gathered before they are written.
const ACK_GATHER: Duration = Duration::from_millis(50);
/// The most acks written in one transaction.
const ACK_BATCH: usize = 8192;

/// Records acknowledged `seq`s in batches: every ack that has arrived
/// while the previous batch was being written goes into the next one, in
/// one relaxed transaction (losing one only means a resend).
///
/// Runs until `finish` (sent once nothing can send acks any more), then
/// records whatever is still queued and ends. Its own `ctx` holds a sender
/// of `acks`, so the channel alone never closes.
pub async fn record_acks(
    ctx: Ctx,
    mut acks: mpsc::UnboundedReceiver<i64>,
    mut finish: oneshot::Receiver<()>,
) {
    loop {
        let first = tokio::select! {
            // Acks first: everything queued is recorded before finishing.
            biased;
            Some(seq) = acks.recv() => seq,
            _ = &mut finish => {
                let mut rest = Vec::new();
                while let Ok(seq) = acks.try_recv() {
                    rest.push(seq);
                }
                for batch in rest.chunks(ACK_BATCH) {
                    record(&ctx, batch.to_vec()).await;
                }
                return;
            }
        };
        // Let acks pile up for a short while without being woken by each
        // one, then take them all: one transaction per burst rather than per
        // handful of acks (each commit rewrites the pages it touched).
        let mut seqs = vec![first];
        tokio::time::sleep(ACK_GATHER).await;
        while seqs.len() < ACK_BATCH {
            match acks.try_recv() {
                Ok(seq) => seqs.push(seq),
                Err(_) => break,
            }
        }
        record(&ctx, seqs).await;
    }
}

/// One batch of acks in one relaxed transaction.
async fn record(ctx: &Ctx, seqs: Vec<i64>) {
    let at = crate::clock::now_string();
    let stamp = at.clone();
    let written = ctx
        .write(Durability::Relaxed, move |tx| {
            queue::mark_delivered(tx, &seqs, &stamp)
        })
        .await;
    match written {
        Ok(n) => ctx.state.delivered(n, at),
        Err(e) => {
            tracing::warn!(error = %e, "could not record deliveries; those events will be sent again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockCheck};
    use crate::config::Config;
    use crate::db::Db;
    use crate::outbox::{self, Commits, Event, EventSource};
    use crate::parcel::ParcelId;
    use crate::photo::store::PhotoStore;
    use crate::sync::{Deps, SyncState};

    /// Delivery's parts, without a station.
    fn deps(dir: &std::path::Path) -> Deps {
        let env = [
            ("YIZHAN_STORAGE__DATA_DIR", dir.display().to_string()),
            ("YIZHAN_STORAGE__MIN_FREE_MB", "0".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let config = Config::load_with_env(None, env).unwrap();
        let db = Db::open(&config.db_path(), &config.backups_dir()).unwrap();
        let events = EventSource {
            station_id: config.station.id.clone(),
            device_id: config.station.device_id.clone(),
            clock: Clock::new(ClockCheck::Off),
        };
        let photos = PhotoStore::new(config.photos_dir(), 0);
        let notices = tokio::sync::broadcast::channel(4).0;
        Deps::new(config, db, events, photos, Commits::default(), notices)
    }

    fn pending(station: &Deps) -> i64 {
        station
            .db()
            .read_blocking(outbox::backlog)
            .unwrap()
            .pending_events
    }

    /// Stopping must not lose a PUBACK that already came in, nor wait on a
    /// channel that its own context keeps open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_recorder_records_every_queued_ack_then_ends_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        let station = deps(dir.path());
        let source = station.events().clone();
        station
            .db()
            .write(Durability::Full, move |tx| {
                for _ in 0..5 {
                    outbox::append(
                        tx,
                        &source,
                        &Event::Held {
                            reason: "test".into(),
                        },
                        &ParcelId::new(),
                        "RT1",
                    )?;
                }
                Ok::<_, DbError>(())
            })
            .await
            .unwrap();
        let (ctx, acks) = Ctx::new(&station, &SyncState::default()).unwrap();
        for seq in [2, 1, 4] {
            ctx.acks.send(seq).unwrap();
        }
        let (finish, finish_rx) = oneshot::channel();
        finish.send(()).unwrap();
        // `ctx` (and the recorder's clone of it) still hold senders: only
        // `finish` can end the recorder.
        tokio::time::timeout(
            Duration::from_secs(30),
            record_acks(ctx.clone(), acks, finish_rx),
        )
        .await
        .expect("the recorder ends on finish");
        assert_eq!(pending(&station), 2, "events 3 and 5 are still pending");
        let still = station
            .db()
            .read_blocking(|c| {
                outbox::list(c, outbox::Filter::Pending, 10)
                    .map(|l| l.into_iter().map(|e| e.seq).collect::<Vec<_>>())
            })
            .unwrap();
        assert_eq!(still, [3, 5]);
        assert_eq!(ctx.state.snapshot().events_delivered, 3);
    }

    #[test]
    fn bucket_lets_a_second_through_then_waits() {
        let mut b = Bucket::new(1000);
        assert!(b.take(600).is_none());
        assert!(b.take(400).is_none());
        let wait = b.take(500).expect("the bucket is empty");
        assert!(wait > Instant::now() + Duration::from_millis(300));
        // Bigger than the bucket: waits for a full bucket, not for ever.
        let mut b = Bucket::new(100);
        assert!(b.take(5000).is_none());
    }
}
