//! Who is asking: the bearer token of a clerk session, or the operator's
//! token of this run (SPEC §7, §12).
//!
//! Clerk-only handlers take a [`Clerk`] argument, so a handler cannot
//! forget the check: without a valid token the request is a 401 before the
//! handler runs. Handlers open to customers take a [`MaybeClerk`] and decide
//! from the parcel.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ConnectInfo;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::clerk;
use crate::station::Station;

/// A request from a logged-in clerk (or the operator's token).
#[derive(Debug, Clone)]
pub struct Clerk {
    /// `None` for the operator's token.
    pub clerk_id: Option<String>,
    pub name: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Clerk
where
    Station: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Clerk, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("this needs a clerk: log in with your clerk id and PIN")
        })?;
        authenticate(&Station::from_ref(state), token).await
    }
}

/// A request that may or may not come from a clerk.
pub struct MaybeClerk(pub Option<Clerk>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeClerk
where
    Station: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<MaybeClerk, ApiError> {
        match bearer(&parts.headers) {
            None => Ok(MaybeClerk(None)),
            // A token that is sent must be valid: a stale console should
            // learn it has to log in again, not silently act as a customer.
            Some(token) => authenticate(&Station::from_ref(state), token)
                .await
                .map(|c| MaybeClerk(Some(c))),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(super) async fn authenticate(st: &Station, token: &str) -> Result<Clerk, ApiError> {
    // Compared as digests: equal length, and nothing learned from timing.
    if Sha256::digest(token.as_bytes()) == Sha256::digest(st.operator_token().as_bytes()) {
        return Ok(Clerk {
            clerk_id: None,
            name: "operator".into(),
        });
    }
    let session = st
        .sessions()
        .touch(token)
        .ok_or_else(|| ApiError::unauthorized("the session has ended: log in again"))?;
    let now = Instant::now();
    if session.needs_check(now) {
        let id = session.clerk_id.clone();
        let enabled = st.db().read(move |c| clerk::enabled(c, &id)).await?;
        if !enabled {
            st.sessions().close_clerk(&session.clerk_id);
            return Err(ApiError::unauthorized("this clerk was disabled"));
        }
        st.sessions().checked(token, now);
    }
    Ok(Clerk {
        clerk_id: Some(session.clerk_id),
        name: session.name,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    clerk_id: String,
    pin: String,
}

/// `POST /api/v1/sessions`: a PIN for a token. Wrong PINs are throttled per
/// clerk, made-up clerk ids per client ([`clerk::Throttle`]).
pub async fn login(
    State(st): State<Station>,
    client: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    // Bounded before anything else, so a huge id cannot grow the throttle.
    let clerk_id: String = req.clerk_id.trim().chars().take(64).collect();
    let id = clerk_id.clone();
    let creds = if clerk::valid_id(&id) {
        st.db().read(move |c| clerk::credentials(c, &id)).await?
    } else {
        None
    };
    // Served by `api::serve`, every request knows its peer; without it
    // (tests calling the router directly) it is the kiosk itself.
    let ip = client.map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip());
    let claim = match creds {
        Some(_) => clerk::Claim::Known(&clerk_id),
        None => clerk::Claim::Unknown(ip),
    };
    if let Err(wait) = st.throttle().check(claim) {
        return Err(too_many(wait));
    }
    let pin = req.pin;
    let name = tokio::task::spawn_blocking(move || match creds {
        Some((hash, name)) => clerk::verify_pin(&hash, &pin).then_some(name),
        None => {
            // The same work as a real check: an unknown id must not
            // answer faster than a wrong PIN.
            clerk::verify_pin(dummy_hash(), &pin);
            None
        }
    })
    .await
    .map_err(|e| ApiError::internal(format_args!("the PIN check did not finish: {e}")))?;
    let Some(name) = name else {
        st.throttle().failed(claim);
        tracing::warn!(clerk_id = %clerk_id, client = %ip, "wrong clerk id or PIN");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_pin",
            "wrong clerk id or PIN",
        ));
    };
    st.throttle().succeeded(&clerk_id);
    let token = st
        .sessions()
        .open(&clerk_id, &name)
        .map_err(|e| ApiError::internal(format_args!("no randomness for a token: {e}")))?;
    tracing::info!(clerk_id = %clerk_id, "clerk logged in");
    let body = json!({
        "token": token,
        "clerk_id": clerk_id,
        "name": name,
        "idle_timeout_s": st.sessions().idle().as_secs(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/sessions/current`: who the token belongs to.
pub async fn current(clerk: Clerk) -> Json<serde_json::Value> {
    Json(json!({ "clerk_id": clerk.clerk_id, "name": clerk.name }))
}

/// `DELETE /api/v1/sessions/current`: log out. Like every clerk endpoint,
/// 401 without a session.
pub async fn logout(State(st): State<Station>, _clerk: Clerk, headers: HeaderMap) -> StatusCode {
    if let Some(token) = bearer(&headers) {
        st.sessions().close(token);
    }
    StatusCode::NO_CONTENT
}

/// `DELETE /api/v1/clerks/{id}/sessions`: ends every session of a clerk
/// at once (the operator's token only; `yizhan clerk disable` calls it).
pub async fn end_clerk_sessions(
    State(st): State<Station>,
    clerk: Clerk,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    if clerk.clerk_id.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "operator_only",
            "only the operator's token ends another clerk's sessions",
        ));
    }
    st.sessions().close_clerk(&id);
    tracing::info!(clerk_id = %id, "clerk's sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

fn too_many(wait: Duration) -> ApiError {
    let secs = wait.as_secs().max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many wrong PINs: try again in {secs} s"),
    )
}

/// A valid hash of a PIN nobody has, for the unknown-clerk path.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| clerk::hash_pin("00000000").unwrap_or_default())
}
