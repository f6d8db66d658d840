//! Clerk endpoints after check-in: bags, handovers; and the customer's
//! progress page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Clerk;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use crate::counter::{Bag, Handover, HandoverInput, ParcelRef, Progress};
use crate::custody;
use crate::station::Station;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBag {
    #[serde(default)]
    code: Option<String>,
}

pub async fn open_bag(
    State(st): State<Station>,
    clerk: Clerk,
    JsonBody(req): JsonBody<NewBag>,
) -> Result<(StatusCode, Json<Bag>), ApiError> {
    let bag = st.open_bag(req.code, clerk.clerk_id).await?;
    Ok((StatusCode::CREATED, Json(bag)))
}

pub async fn bags(State(st): State<Station>, _clerk: Clerk) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "bags": st.open_bags().await? })))
}

pub async fn bag(
    State(st): State<Station>,
    _clerk: Clerk,
    Path(key): Path<String>,
) -> Result<Json<Bag>, ApiError> {
    Ok(Json(st.bag(key).await?))
}

/// One of `parcel_id` or `waybill_no`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BagParcel {
    #[serde(default)]
    parcel_id: Option<String>,
    #[serde(default)]
    waybill_no: Option<String>,
}

pub async fn bag_parcel(
    State(st): State<Station>,
    clerk: Clerk,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<BagParcel>,
) -> Result<Json<Bag>, ApiError> {
    let parcel = match (req.parcel_id, req.waybill_no) {
        (Some(id), None) => ParcelRef::id(&id)?,
        (None, Some(wb)) => ParcelRef::waybill(&wb)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "give exactly one of parcel_id or waybill_no",
            ));
        }
    };
    Ok(Json(st.bag_parcel(key, parcel, clerk.clerk_id).await?))
}

pub async fn hand_over(
    State(st): State<Station>,
    clerk: Clerk,
    JsonBody(req): JsonBody<HandoverInput>,
) -> Result<(StatusCode, Json<Handover>), ApiError> {
    let h = st.record_handover(req, clerk.clerk_id).await?;
    Ok((StatusCode::CREATED, Json(h)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn handovers(
    State(st): State<Station>,
    _clerk: Clerk,
    QueryParams(q): QueryParams<Limit>,
) -> Result<Json<Value>, ApiError> {
    let list = st
        .recent_handovers(q.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    Ok(Json(json!({ "handovers": list })))
}

pub async fn handover(
    State(st): State<Station>,
    _clerk: Clerk,
    Path(id): Path<String>,
) -> Result<Json<Handover>, ApiError> {
    Ok(Json(st.find_handover(id).await?))
}

#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    token: String,
}

/// Open to anyone: what one of this station's tokens (a `YZK1` receipt, a
/// `YZH1` handover) proves, checked against the station's key.
pub async fn verify(
    State(st): State<Station>,
    QueryParams(q): QueryParams<VerifyQuery>,
) -> Json<custody::Verdict> {
    let key = st.signing_key().verifying_key();
    let sid = &st.config().station.id;
    Json(custody::verify(&q.token, &key, sid).into())
}

/// Open to customers: `{return_no}` may also be a scanned return code or
/// this station's receipt.
pub async fn progress(
    State(st): State<Station>,
    Path(code): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    Ok(Json(st.progress(&code).await?))
}
