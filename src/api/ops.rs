//! Operator and lookup endpoints: `/healthz`, `/metrics`, the manual
//! return lookup, the carrier list, and the kiosk page.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Clerk;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::metrics::Gauges;
use crate::station::Station;
use crate::sync::SyncState;
use crate::{manifest, outbox, parcel};

/// Liveness: the database answers. 503 when it does not.
pub async fn healthz(
    State(st): State<Station>,
    serving: Option<axum::Extension<std::sync::Arc<super::ServeInfo>>>,
) -> Response {
    let db = st
        .db()
        .read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(crate::db::DbError::from)
        })
        .await;
    let (status, db_state) = match &db {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut body = json!({
        "status": if db.is_ok() { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "station_id": st.config().station.id,
        "device_id": st.config().station.device_id,
        "db": db_state,
        "sqlite": rusqlite::version(),
    });
    if let Some(axum::Extension(info)) = serving {
        body["connections"] = json!({
            "open": info.open.now(),
            "max": info.limits.max_connections,
            "open_files_limit": info.limits.open_files,
        });
    }
    body["photos"] = json!({
        "decoded_at_once": st.photo_slots().count(),
        "memory_bound_mib": st.photo_slots().bound_bytes() >> 20,
    });
    // The clock: an untrusted one is a warning (events say so), not a
    // failed liveness check.
    if let Ok(trust) = st.check_clock().await {
        body["clock"] = json!(trust);
    }
    // The kiosk's devices: a problem with one is a warning, not a failed
    // liveness check (the station works without them).
    let devices = st.devices().snapshot();
    if !devices.is_empty() {
        body["devices"] = json!(devices);
    }
    // E-waybill pools: one running low is a warning, not a failed check.
    let low_water = st.config().station.waybill_low_water;
    if let Ok(levels) = st
        .db()
        .read(move |c| crate::pool::levels(c, low_water))
        .await
        && !levels.is_empty()
    {
        body["waybill_pools"] = json!(levels);
    }
    (status, Json(body)).into_response()
}

/// The e-waybill pools against the low-water mark (the clerk screen's
/// warning): `{"low_water":N,"pools":[{"carrier","remaining","low"}]}`.
pub async fn waybill_pools(
    State(st): State<Station>,
    _clerk: super::auth::Clerk,
) -> Result<Json<serde_json::Value>, ApiError> {
    let low_water = st.config().station.waybill_low_water;
    let levels = st
        .db()
        .read(move |c| crate::pool::levels(c, low_water))
        .await?;
    Ok(Json(json!({ "low_water": low_water, "pools": levels })))
}

/// Prometheus text format.
pub async fn metrics(
    State(st): State<Station>,
    State(sync): State<SyncState>,
) -> Result<Response, ApiError> {
    let sla_h = i64::from(st.config().station.pickup_sla_h);
    let printer = st.config().hardware.printer.is_some();
    let low_water = st.config().station.waybill_low_water;
    let gauges = st
        .db()
        .read(move |c| -> Result<Gauges, crate::db::DbError> {
            let backlog = outbox::backlog(c)?;
            let cutoff = crate::clock::format(crate::clock::now() - chrono::Duration::hours(sla_h));
            let counts = parcel::store::counts(c)?;
            let photos = crate::sync::queue::photo_backlog(c)?;
            Ok(Gauges {
                parcels: <parcel::State as strum::IntoEnumIterator>::iter()
                    .map(|s| {
                        (
                            s.as_str(),
                            counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n),
                        )
                    })
                    .collect(),
                pending_events: backlog.pending_events,
                oldest_pending_s: backlog.oldest_pending_s.unwrap_or(0),
                dead_letters: backlog.dead_letters,
                last_seq: backlog.last_seq,
                overdue_parcels: parcel::store::overdue(c, &cutoff)?,
                manifest_entries: manifest::summary(c)?.0,
                pending_photos: photos.pending_photos,
                dead_photos: photos.dead_photos,
                print_queued: if printer {
                    Some(crate::print::store::queued(
                        c,
                        crate::print::store::Takes::All,
                    )?)
                } else {
                    None
                },
                waybill_pools: crate::pool::levels(c, low_water)?,
                ..Gauges::default()
            })
        })
        .await?;
    let live = sync.snapshot();
    let gauges = Gauges {
        mqtt_connected: i64::from(live.mqtt_connected),
        events_delivered: live.events_delivered as i64,
        photos_uploaded: live.photos_uploaded as i64,
        last_delivery_ts: live
            .last_delivery_at
            .as_deref()
            .and_then(crate::clock::parse)
            .map_or(0, |t| t.timestamp()),
        clock_trusted: st.clock_trust().map(|t| i64::from(t.trusted)),
        login_lockouts: st.throttle().lockouts(),
        devices: st
            .devices()
            .snapshot()
            .into_iter()
            .map(|(name, d)| (name, d.kind, d.state.as_str()))
            .collect(),
        ..gauges
    };
    let text = st.metrics().render(&gauges);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<u32>,
}

/// Manual lookup by return number, order number or phone last 4.
pub async fn lookup(
    State(st): State<Station>,
    _clerk: Clerk,
    QueryParams(q): QueryParams<LookupQuery>,
) -> Result<Json<Value>, ApiError> {
    let query = q.q.trim().to_owned();
    if query.is_empty() || query.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must be 1 to 64 characters: a return number, order number or the phone's last 4 digits",
        ));
    }
    let returns = st
        .lookup(query, q.limit.unwrap_or(20).clamp(1, 100))
        .await?;
    Ok(Json(json!({ "returns": returns })))
}

/// Delivery state: connections, backlog, dead letters (SPEC §7).
pub async fn sync(
    State(st): State<Station>,
    State(sync): State<SyncState>,
    _clerk: Clerk,
) -> Result<Json<crate::sync::SyncView>, ApiError> {
    let view = crate::sync::view(st.db(), st.config(), &sync).await?;
    Ok(Json(view))
}

pub async fn carriers(State(st): State<Station>, _clerk: Clerk) -> Json<Value> {
    Json(json!({ "carriers": st.config().carriers.list() }))
}

/// What the kiosk screen needs to know about this station (no secrets).
pub async fn kiosk(State(st): State<Station>) -> Json<Value> {
    let c = st.config();
    Json(json!({
        "station_id": c.station.id,
        "station_name": c.station.name,
        "min_photos": c.station.min_photos,
        "pickup_sla_h": c.station.pickup_sla_h,
        "kiosk_idle_s": c.api.kiosk_idle_s,
        "session_idle_min": c.api.session_idle_min,
        "clock_trusted": st.clock_trust().is_none_or(|t| t.trusted),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
