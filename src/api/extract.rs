//! Extractors that turn every malformed request into an [`ApiError`] with
//! our JSON shape, instead of axum's plain-text rejections.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::parcel::ParcelId;

/// JSON bodies are small; photos have their own limit.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// A JSON body, read whatever the Content-Type says (kiosk scripts are
/// not always careful), bounded in size, with serde's words on failure.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the JSON body is larger than {MAX_JSON_BYTES} bytes"),
                ),
                BodyError::Broken(m) => ApiError::bad_request("invalid_body", m),
                BodyError::TimedOut(m) => timed_out(m),
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
    }
}

/// Reads a raw body of at most `limit` bytes.
pub async fn body_bytes(body: Body, limit: u64) -> Result<Vec<u8>, ApiError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    read_limited(body, cap).await.map_err(|e| match e {
        BodyError::TooLarge => ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "photo_too_large",
            format!("the upload is larger than {limit} bytes"),
        ),
        BodyError::Broken(m) => ApiError::bad_request("invalid_body", m),
        BodyError::TimedOut(m) => timed_out(m),
    })
}

fn timed_out(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("{message}; send it again"),
    )
}

/// How much of an oversized body is read and thrown away so the client,
/// still sending, can read our 413 instead of a reset connection. Beyond
/// this the connection is simply closed.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

enum BodyError {
    TooLarge,
    Broken(String),
    /// Not all of it arrived within `api.body_timeout_s`.
    TimedOut(String),
}

/// Reads at most `limit` bytes; past that, drains (up to [`DRAIN_CAP`])
/// and reports `TooLarge`.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e = e.into_inner();
            match e.downcast_ref::<super::serve::BodyTimedOut>() {
                Some(t) => BodyError::TimedOut(t.to_string()),
                None => BodyError::Broken(format!("could not read the body: {e}")),
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            if seen > DRAIN_CAP {
                break;
            }
            out.clear();
            continue;
        }
        out.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// The `{id}` path segment as a parcel id; anything else is a 404.
pub struct PathId(pub ParcelId);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found("no such parcel"))?;
        ParcelId::parse(&raw)
            .map(PathId)
            .ok_or_else(|| ApiError::not_found(format!("no parcel {raw:?}")))
    }
}

/// Query parameters, with a 400 in our shape on failure.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}
