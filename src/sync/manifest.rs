//! Manifest pulls (SPEC §6.2): at start, every `manifest_interval_s`, and
//! on the platform's `manifest.refresh`; each page commits with its cursor.

use std::time::Duration;

use tokio::sync::watch;

use super::https::Platform;
use super::{Ctx, SyncError, commands, stopped};
use crate::db::Durability;

/// Manifest pulls: at start, every `manifest_interval_s`, on refresh.
pub(super) async fn manifest(ctx: Ctx, platform: Platform, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(ctx.deps.config().sync.manifest_interval_s);
    let mut backoff = ctx.backoff();
    loop {
        let wait = match pull_manifest(&ctx, &platform).await {
            Ok(n) => {
                backoff.reset();
                tracing::info!(returns = n, "manifest pulled");
                ctx.state.update(|l| {
                    l.manifest_last_pull_at = Some(crate::clock::now_string());
                    l.manifest_last_error = None;
                });
                interval
            }
            Err(e) => {
                let delay = backoff.next_delay().min(interval);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "manifest pull failed; will retry");
                ctx.state
                    .update(|l| l.manifest_last_error = Some(e.to_string()));
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.state.manifest_refresh_requested() => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Pulls pages until the platform has nothing newer; returns the number of
/// returns taken in. Each page and its cursor commit together.
async fn pull_manifest(ctx: &Ctx, platform: &Platform) -> Result<usize, SyncError> {
    const MAX_PAGES: usize = 1000;
    let mut total = 0;
    for _ in 0..MAX_PAGES {
        let cursor = ctx
            .read(|c| crate::manifest::summary(c).map(|(_, cursor)| cursor))
            .await?;
        let raw = platform.manifest_page(cursor.as_deref()).await?;
        let page = crate::manifest::parse(&raw).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let n = page.returns.len();
        let next = page.cursor.clone();
        let source = ctx.deps.events().clone();
        let held = ctx
            .write(Durability::Full, move |tx| {
                crate::manifest::upsert(tx, &page.returns)?;
                for block in &page.waybill_pools {
                    crate::pool::add(tx, block)?;
                }
                let mut held = 0;
                for r in &page.returns {
                    if r.status == crate::manifest::ReturnStatus::Cancelled {
                        held += commands::hold_cancelled(tx, &source, &r.return_no)?;
                    }
                }
                if let Some(c) = &page.cursor {
                    crate::manifest::set_cursor(tx, c)?;
                }
                Ok::<_, commands::CommandError>(held)
            })
            .await?;
        if held > 0 {
            ctx.deps.events_committed();
        }
        total += n;
        if n == 0 || next.is_none() || next == cursor {
            return Ok(total);
        }
    }
    Ok(total)
}
