//! Check-in endpoints: scans, photos, drop, accept, reject, parcels and
//! receipts.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{Clerk, MaybeClerk};
use super::error::ApiError;
use super::extract::{JsonBody, PathId, QueryParams, body_bytes};
use crate::checkin::{AcceptInput, ReceiptView, ScanAnswer};
use crate::parcel::store::Parcel;
use crate::parcel::{Channel, State as ParcelState};
use crate::photo::{Kind, Photo};
use crate::receipt;
use crate::station::Station;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    code: String,
    channel: Channel,
}

/// Anyone may scan for self-service; the clerk channel needs a session.
pub async fn scan(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    JsonBody(req): JsonBody<ScanRequest>,
) -> Result<Json<ScanAnswer>, ApiError> {
    if req.channel == Channel::Clerk && clerk.is_none() {
        return Err(ApiError::unauthorized(
            "the clerk channel needs a clerk session; customers scan with channel \"self\"",
        ));
    }
    Ok(Json(st.scan(req.code.into_bytes(), req.channel).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoQuery {
    #[serde(default)]
    kind: Option<String>,
    /// Without a clerk session: the self-service draft's key.
    #[serde(default)]
    key: Option<String>,
    /// `camera`: no body; the kiosk camera's latest frame is the photo.
    #[serde(default)]
    source: Option<String>,
}

pub async fn add_photo(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    PathId(id): PathId,
    QueryParams(q): QueryParams<PhotoQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Photo>), ApiError> {
    let kind = match q.kind.as_deref() {
        None => Kind::Parcel,
        Some(k) => Kind::parse(k).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("kind {k:?} must be label, parcel or damage"),
            )
        })?,
    };
    if clerk.is_none() {
        require_key(&st, &id, q.key.as_deref()).await?;
    }
    let bytes = body_bytes(body, st.config().storage.max_photo_bytes).await?;
    let bytes = match q.source.as_deref() {
        None | Some("upload") => bytes,
        Some("camera") => camera_frame(&st, &bytes)?,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("source {other:?} must be camera (or left out for an uploaded photo)"),
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(st.add_photo(&id, kind, bytes, clerk.is_some()).await?),
    ))
}

/// The kiosk camera's latest frame as a JPEG, for `?source=camera`.
fn camera_frame(st: &Station, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    if !body.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "source=camera takes no body: the kiosk camera takes the photo",
        ));
    }
    if st.config().hardware.camera.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_camera",
            "no camera is configured ([hardware.camera]); upload the photo instead",
        ));
    }
    let frame = st.devices().fresh_frame().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "camera_unavailable",
            "the kiosk camera has no recent picture (unplugged or starting); try again or upload the photo",
        )
    })?;
    frame.to_jpeg().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "camera_unavailable",
            format!("the camera's picture could not be used: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    #[serde(default)]
    key: Option<String>,
}

/// The customer drops their own draft off: it takes the draft's key.
pub async fn drop_off(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    PathId(id): PathId,
    QueryParams(q): QueryParams<KeyQuery>,
) -> Result<Json<ReceiptView>, ApiError> {
    if clerk.is_none() {
        require_key(&st, &id, q.key.as_deref()).await?;
    }
    Ok(Json(st.drop_off(&id).await?))
}

/// Without a clerk session, a self-service parcel is reached with its key
/// only: a parcel id seen on a screen or in a log is not enough (issue 24).
async fn require_key(
    st: &Station,
    id: &crate::parcel::ParcelId,
    key: Option<&str>,
) -> Result<(), ApiError> {
    let Some(key) = key else {
        return Err(ApiError::unauthorized(
            "this needs the key the kiosk was given with the scan (?key=…), or a clerk",
        ));
    };
    if st.key_opens(id, key).await? {
        Ok(())
    } else {
        // The same answer as for no parcel at all: nothing learned.
        Err(ApiError::not_found(format!("no parcel {id} with this key")))
    }
}

pub async fn accept(
    State(st): State<Station>,
    clerk: Clerk,
    PathId(id): PathId,
    JsonBody(mut input): JsonBody<AcceptInput>,
) -> Result<Json<ReceiptView>, ApiError> {
    // A clerk's events name the clerk who is logged in, whatever the body says.
    if clerk.clerk_id.is_some() {
        input.clerk_id = clerk.clerk_id;
    }
    Ok(Json(st.accept(&id, input).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    reason: String,
    #[serde(default)]
    clerk_id: Option<String>,
}

pub async fn reject(
    State(st): State<Station>,
    clerk: Clerk,
    PathId(id): PathId,
    JsonBody(req): JsonBody<RejectRequest>,
) -> Result<Json<Parcel>, ApiError> {
    let clerk_id = clerk.clerk_id.or(req.clerk_id);
    Ok(Json(st.reject(&id, req.reason, clerk_id).await?))
}

/// `held` → `returned_to_customer` (SPEC §2.4).
pub async fn return_to_customer(
    State(st): State<Station>,
    clerk: Clerk,
    PathId(id): PathId,
) -> Result<Json<Parcel>, ApiError> {
    Ok(Json(st.return_to_customer(&id, clerk.clerk_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// Parcels, newest first; those in custody beyond `station.pickup_sla_h`
/// carry `"overdue": true`.
pub async fn list(
    State(st): State<Station>,
    _clerk: Clerk,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = q
        .state
        .map(|s| {
            s.parse::<ParcelState>()
                .map_err(|e| ApiError::bad_request("invalid_query", e))
        })
        .transpose()?;
    let parcels = st
        .parcels(state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let sla = chrono::Duration::hours(i64::from(st.config().station.pickup_sla_h));
    let cutoff = crate::clock::format(crate::clock::now() - sla);
    let parcels: Vec<serde_json::Value> = parcels
        .into_iter()
        .map(|p| {
            let overdue = p.state.in_custody()
                && p.custody_at
                    .as_deref()
                    .is_some_and(|at| at < cutoff.as_str());
            let mut v = serde_json::to_value(&p).unwrap_or_default();
            v["overdue"] = serde_json::Value::Bool(overdue);
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "parcels": parcels })))
}

pub async fn detail(
    State(st): State<Station>,
    _clerk: Clerk,
    PathId(id): PathId,
) -> Result<Json<Parcel>, ApiError> {
    Ok(Json(st.parcel(&id).await?))
}

/// Who may see a receipt: a clerk, the screen holding the draft's key, or
/// whoever holds the receipt token itself (the customer's phone).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

async fn receipt_for(
    st: &Station,
    clerk: Option<super::auth::Clerk>,
    id: &crate::parcel::ParcelId,
    q: ReceiptQuery,
) -> Result<ReceiptView, ApiError> {
    if clerk.is_none() && q.token.is_none() {
        require_key(st, id, q.key.as_deref()).await?;
    }
    let parcel = st.parcel(id).await?;
    let receipt = st.receipt(&parcel)?;
    if clerk.is_none() && q.key.is_none() {
        let given = q.token.as_deref().unwrap_or("");
        use sha2::Digest;
        if sha2::Sha256::digest(given.as_bytes()) != sha2::Sha256::digest(receipt.token.as_bytes())
        {
            return Err(ApiError::not_found(format!(
                "no receipt {given:.20}… for parcel {id}"
            )));
        }
    }
    Ok(receipt)
}

pub async fn receipt(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ReceiptQuery>,
) -> Result<Json<ReceiptView>, ApiError> {
    Ok(Json(receipt_for(&st, clerk, &id, q).await?))
}

pub async fn receipt_png(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ReceiptQuery>,
) -> Result<Response, ApiError> {
    let token = receipt_for(&st, clerk, &id, q).await?.token;
    let png = receipt::render_png(&token)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

pub async fn receipt_svg(
    State(st): State<Station>,
    MaybeClerk(clerk): MaybeClerk,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ReceiptQuery>,
) -> Result<Response, ApiError> {
    let token = receipt_for(&st, clerk, &id, q).await?.token;
    let svg = receipt::render_svg(&token)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
