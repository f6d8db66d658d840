//! Event batches over HTTPS (SPEC §6.2): when `events_via` is `https`, or
//! `auto` while MQTT is not connected.

use std::time::Duration;

use tokio::sync::watch;

use super::https::{BatchAnswer, Platform};
use super::{Ctx, SyncError, drain, pause, queue, stopped};
use crate::config::EventsVia;
use crate::db::{DbError, Durability};

/// Event batches over HTTPS.
pub(super) async fn events_over_https(
    ctx: Ctx,
    platform: Platform,
    via: EventsVia,
    mut stop: watch::Receiver<bool>,
) {
    let batch = ctx.deps.config().sync.batch_size as usize;
    let cap = ctx.deps.config().sync.max_bytes_per_s;
    let mut mqtt_up = ctx.state.watch_mqtt();
    let mut committed = ctx.deps.watch_events();
    let mut backoff = ctx.backoff();
    // Events committed after this task started are "live" (see drain).
    let mark = ctx.read(queue::last_seq).await.unwrap_or(0);
    let mut selector = drain::Selector::new(mark, cap);
    loop {
        if *stop.borrow() {
            return;
        }
        if via == EventsVia::Auto && *mqtt_up.borrow_and_update() {
            tokio::select! {
                _ = mqtt_up.changed() => continue,
                () = stopped(&mut stop) => return,
            }
        }
        // Each round starts from the head: nothing is in flight between
        // rounds, and delivered events are marked before the next one.
        selector.rewind();
        let pick = match selector.next(&ctx, batch).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; will retry");
                if pause(backoff.next_delay(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if pick.events.is_empty() {
            let wait = match pick.wait_until {
                Some(t) => t.saturating_duration_since(std::time::Instant::now()),
                None => Duration::from_secs(5),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = committed.changed() => {}
                _ = mqtt_up.changed() => {}
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let bodies: Vec<&str> = pick.events.iter().map(|e| e.body.as_str()).collect();
        match platform.post_events(&bodies).await {
            Ok(answer) => {
                backoff.reset();
                if let Err(e) = record_answer(&ctx, answer).await {
                    tracing::warn!(error = %e, "could not record deliveries; will resend");
                    if pause(backoff.next_delay(), &mut stop).await {
                        return;
                    }
                }
            }
            Err(e) => {
                let seqs: Vec<i64> = pick.events.iter().map(|e| e.seq).collect();
                record_failure(&ctx, seqs, &e).await;
                let delay = if e.is_refusal() {
                    backoff.max()
                } else {
                    backoff.next_delay()
                };
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "event batch not delivered; will retry");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = mqtt_up.changed(), if via == EventsVia::Auto => {}
                    () = stopped(&mut stop) => return,
                }
            }
        }
    }
}

/// Marks what the platform took (or already had) as delivered and what it
/// refused as dead letters, in one relaxed transaction.
async fn record_answer(ctx: &Ctx, answer: BatchAnswer) -> Result<(), DbError> {
    ctx.state.update(|l| {
        l.https_reachable = Some(true);
        l.https_last_error = None;
    });
    let at = crate::clock::now_string();
    let mut delivered = answer.accepted;
    delivered.extend(answer.duplicates);
    let refused: Vec<(String, String)> = answer
        .rejected
        .into_iter()
        .map(|r| (r.event_id, r.reason))
        .collect();
    if !refused.is_empty() {
        tracing::error!(count = refused.len(), first = %refused[0].0, reason = %refused[0].1, "the platform refused events; they are dead letters now (yizhan outbox dead)");
    }
    let stamp = at.clone();
    let n = ctx
        .write(Durability::Relaxed, move |tx| {
            let n = queue::mark_delivered_ids(tx, &delivered, &stamp)?;
            queue::mark_dead(tx, &refused, &stamp)?;
            Ok::<_, DbError>(n)
        })
        .await?;
    ctx.state.delivered(n, at);
    Ok(())
}

/// Notes a failed batch on its events (for `yizhan outbox pending`) and in
/// the live state.
async fn record_failure(ctx: &Ctx, seqs: Vec<i64>, e: &SyncError) {
    let text = e.to_string();
    let _ = ctx
        .write(Durability::Relaxed, move |tx| {
            queue::note_failure(tx, &seqs, &text)
        })
        .await;
    ctx.state.update(|l| {
        l.https_reachable = Some(false);
        l.https_last_error = Some(e.to_string());
    });
}
