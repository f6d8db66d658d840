//! Device endpoints (SPEC §10): scans the kiosk's own scanners made, codes
//! found in a camera frame, reprints, and the devices' states.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Clerk, MaybeClerk};
use super::error::ApiError;
use super::extract::{PathId, QueryParams, body_bytes};
use crate::hardware::DeviceScan;
use crate::parcel::Channel;
use crate::station::Station;

/// A scan a device made, announced on the stream by id. A clerk scanner's
/// scans are for a clerk session; a self-service scanner's for the kiosk.
pub async fn device_scan(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    Path(scan_id): Path<String>,
) -> Result<Json<DeviceScan>, ApiError> {
    let scan = st
        .devices()
        .scan(&scan_id)
        .ok_or_else(|| ApiError::not_found(format!("no recent device scan {scan_id}")))?;
    if scan.channel == Channel::Clerk && clerk.is_none() {
        return Err(ApiError::unauthorized(
            "scans from the clerk's scanner are shown to a logged-in clerk",
        ));
    }
    Ok(Json(scan))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageQuery {
    channel: Channel,
}

/// `POST /api/v1/scans/image?channel=…`: a JPEG or PNG frame; the answer
/// of `POST /api/v1/scans` for the first return code in it, plus every
/// code found (`decoded`).
pub async fn scan_image(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    QueryParams(q): QueryParams<ImageQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if q.channel == Channel::Clerk && clerk.is_none() {
        return Err(ApiError::unauthorized(
            "the clerk channel needs a clerk session; customers scan with channel=self",
        ));
    }
    let bytes = body_bytes(body, st.config().storage.max_photo_bytes).await?;
    let (answer, found) = st.scan_image(bytes, q.channel).await?;
    let mut v = serde_json::to_value(&answer)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let decoded: Vec<&str> = found.iter().map(|f| f.text.as_str()).collect();
    v["decoded"] = json!(decoded);
    Ok(Json(v))
}

/// `POST /api/v1/parcels/{id}/receipt/print`: queue a reprint (202).
pub async fn reprint(
    State(st): State<Station>,
    _clerk: Clerk,
    PathId(id): PathId,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job = st.reprint_receipt(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job }))))
}

/// `GET /api/v1/devices`: every device and its state (the screen shows
/// problems to the clerk). No secrets: names, kinds, paths, states.
pub async fn devices(State(st): State<Station>) -> Json<Value> {
    let c = &st.config().hardware;
    Json(json!({
        "devices": st.devices().snapshot(),
        "self_scanners": c.scanners.iter().filter(|s| s.channel == Channel::SelfService).count(),
        "clerk_scanners": c.scanners.iter().filter(|s| s.channel == Channel::Clerk).count(),
        "camera": c.camera.is_some(),
        "printer": c.printer.is_some(),
    }))
}
