//! Photo uploads (SPEC §6.2, §9): content-addressed, oldest first, on
//! their own queue, never in the events' way.

use std::time::Duration;

use tokio::sync::watch;

use super::https::Platform;
use super::queue::{self, PhotoMark};
use super::{Ctx, pause, stopped};
use crate::db::Durability;

/// Photo uploads: oldest first, one at a time, retried with backoff.
pub(super) async fn photos(ctx: Ctx, platform: Platform, mut stop: watch::Receiver<bool>) {
    let mut committed = ctx.deps.watch_events();
    let mut backoff = ctx.backoff();
    loop {
        let batch = match ctx.read(|c| queue::pending_photos(c, 16)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the photo queue; will retry");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = committed.changed() => {}
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let mut failed = None;
        for photo in batch {
            if *stop.borrow() {
                return;
            }
            let path = ctx.deps.photos().path(&photo.sha256);
            let mark = match tokio::fs::read(&path).await {
                Err(e) => PhotoMark::Dead(format!("file {} unreadable: {e}", path.display())),
                Ok(jpeg) => match platform.put_photo(&photo.sha256, jpeg).await {
                    Ok(()) => PhotoMark::Uploaded,
                    Err(e) if e.is_refusal() => PhotoMark::Dead(e.to_string()),
                    Err(e) => PhotoMark::Failed(e.to_string()),
                },
            };
            let sha = photo.sha256.clone();
            let m = mark.clone();
            let at = crate::clock::now_string();
            if let Err(e) = ctx
                .deps
                .db()
                .write(Durability::Relaxed, move |tx| {
                    queue::mark_photo(tx, &sha, &m, &at)
                })
                .await
            {
                tracing::warn!(error = %e, "could not record a photo upload; will upload again");
            }
            match mark {
                PhotoMark::Uploaded => {
                    backoff.reset();
                    ctx.state.update(|l| l.photos_uploaded += 1);
                }
                PhotoMark::Dead(reason) => {
                    tracing::error!(sha256 = %photo.sha256, reason = %reason, "photo refused for good; a dead letter now (yizhan outbox dead)")
                }
                PhotoMark::Failed(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failed {
            let delay = backoff.next_delay();
            tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "photo upload failed; will retry");
            if pause(delay, &mut stop).await {
                return;
            }
        }
    }
}
