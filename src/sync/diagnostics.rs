//! `diagnostics.upload` (docs/PROTOCOL.md §2.3): the station PUTs what an
//! operator would look at over ssh (`yizhan status --json`, `yizhan db
//! check`, its last log lines) to
//! `{base}/v1/stations/{sid}/diagnostics/{command_id}`.
//!
//! The command is recorded by `command_id` like every command, so a
//! redelivery does not upload again; the upload itself is a PUT to a URL
//! named by that id, so a retry after a lost answer replaces the same
//! document.

use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::https::Platform;

/// Attempts before an upload is given up (the platform can ask again with
/// a new `command_id`).
const ATTEMPTS: u32 = 8;

/// Collects and uploads the diagnostics for `command_id`, retrying with
/// backoff; never fails the caller.
pub(super) async fn upload(ctx: Ctx, command_id: String) {
    let cfg = ctx.deps.config();
    let Some(https) = &cfg.sync.https else {
        tracing::warn!(command_id = %command_id, "diagnostics.upload asked for, but sync.https.base_url is not set; nothing uploaded");
        return;
    };
    let timeout = Duration::from_secs(cfg.sync.timeout_s);
    let platform = match Platform::new(https, &cfg.station.id, timeout) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(command_id = %command_id, error = %e, "cannot upload diagnostics");
            return;
        }
    };
    let body = match collect(&ctx, &command_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(command_id = %command_id, error = %e, "cannot collect diagnostics");
            return;
        }
    };
    let mut backoff = ctx.backoff();
    for attempt in 1..=ATTEMPTS {
        match platform.put_diagnostics(&command_id, body.clone()).await {
            Ok(()) => {
                tracing::info!(command_id = %command_id, bytes = body.len(), "diagnostics uploaded");
                return;
            }
            Err(e) if e.is_refusal() || attempt == ATTEMPTS => {
                tracing::error!(command_id = %command_id, error = %e, attempt, "diagnostics upload failed; giving up");
                return;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(command_id = %command_id, error = %e, retry_in_ms = delay.as_millis() as u64, "diagnostics upload failed; will retry");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The document: the station's own reports (from the probe the daemon
/// installed), what sync sees, and the last log lines.
async fn collect(ctx: &Ctx, command_id: &str) -> Result<Vec<u8>, String> {
    let deps = ctx.deps.clone();
    let reports = tokio::task::spawn_blocking(move || deps.diagnostics())
        .await
        .map_err(|e| e.to_string())?;
    let sync = super::view(ctx.deps.db(), ctx.deps.config(), &ctx.state)
        .await
        .map_err(|e| e.to_string())?;
    let mut doc = json!({
        "command_id": command_id,
        "station_id": ctx.deps.config().station.id,
        "device_id": ctx.deps.config().station.device_id,
        "version": env!("CARGO_PKG_VERSION"),
        "at": crate::clock::now_string(),
        "sync": sync,
        "health": ctx.deps.health(),
        "log": crate::logging::recent(),
    });
    if let (Some(doc), serde_json::Value::Object(reports)) = (doc.as_object_mut(), reports) {
        doc.extend(reports);
    }
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}
