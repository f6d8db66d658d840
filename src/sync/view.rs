//! What delivery looks like from outside: the retained presence message
//! (SPEC §6.1) and the view of `GET /api/v1/sync` and `yizhan status`.

use serde::Serialize;

use super::queue::{self, PhotoBacklog};
use super::{Ctx, Live, SyncState};
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::outbox::Backlog;

/// The retained presence message (SPEC §6.1).
pub(super) async fn presence(ctx: &Ctx, online: bool) -> String {
    let low_water = ctx.deps.config().station.waybill_low_water;
    let counts = ctx
        .read(move |c| Ok::<_, DbError>((queue::backlogs(c)?, crate::pool::levels(c, low_water)?)))
        .await;
    let ((backlog, photos), pools) = counts.unwrap_or_default();
    let mut status = serde_json::json!({
        "online": online,
        "version": env!("CARGO_PKG_VERSION"),
        "pending_events": backlog.pending_events,
        "pending_photos": photos.pending_photos,
        "oldest_pending_s": backlog.oldest_pending_s.unwrap_or(0),
        "at": crate::clock::now_string(),
    });
    // Only a station with pools says so: the platform sends more before
    // one runs dry.
    if !pools.is_empty() {
        status["waybill_pools"] = serde_json::json!(pools);
    }
    if let (Some(status), serde_json::Value::Object(health)) =
        (status.as_object_mut(), ctx.deps.health())
    {
        status.extend(health);
    }
    status.to_string()
}

/// Everything `GET /api/v1/sync` and `yizhan status` show.
#[derive(Debug, Clone, Serialize)]
pub struct SyncView {
    pub configured: bool,
    pub events_via: &'static str,
    pub mqtt_configured: bool,
    pub https_configured: bool,
    /// The station can reach the platform over some transport now.
    pub online: bool,
    #[serde(flatten)]
    pub live: Live,
    #[serde(flatten)]
    pub backlog: Backlog,
    #[serde(flatten)]
    pub photos: PhotoBacklog,
}

/// The view for a running station: its database and configuration, and
/// what the sync tasks report.
pub async fn view(db: &Db, config: &Config, state: &SyncState) -> Result<SyncView, DbError> {
    let (backlog, photos) = db.read(queue::backlogs).await?;
    let cfg = &config.sync;
    let live = state.snapshot();
    Ok(SyncView {
        configured: cfg.enabled(),
        events_via: cfg.events_via.as_str(),
        mqtt_configured: cfg.mqtt.is_some(),
        https_configured: cfg.https.is_some(),
        online: live.mqtt_connected || live.https_reachable == Some(true),
        live,
        backlog,
        photos,
    })
}
