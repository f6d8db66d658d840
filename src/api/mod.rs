//! The local HTTP API (SPEC §7): JSON over HTTP/1.1 on `api.listen`.
//!
//! # Invariants
//! - A 2xx on a state change means its event is committed and fsync'd.
//! - Every error is `{"error":{"code","message"}}`; input problems are 4xx.
//!   Unknown paths and methods answer in the same shape, and a panic in a
//!   handler becomes a 500 in that shape instead of a dropped connection.

mod auth;
mod counter;
mod devices;
mod error;
mod extract;
mod ops;
mod parcels;
pub mod serve;
mod stream;
mod ui;

use std::future::Future;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;

use crate::station::Station;
use crate::sync::SyncState;

/// What the handlers are given: the station, and what delivery reports
/// (each handler takes the part it needs, `State<Station>` or
/// `State<SyncState>`).
#[derive(Clone)]
pub struct AppState {
    pub station: Station,
    pub sync: SyncState,
}

impl axum::extract::FromRef<AppState> for Station {
    fn from_ref(state: &AppState) -> Station {
        state.station.clone()
    }
}

impl axum::extract::FromRef<AppState> for SyncState {
    fn from_ref(state: &AppState) -> SyncState {
        state.sync.clone()
    }
}

/// Builds the router for a station and its delivery.
pub fn router(state: AppState) -> Router {
    let station = state.station.clone();
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/scans", post(parcels::scan))
        .route("/api/v1/scans/image", post(devices::scan_image))
        .route("/api/v1/scans/{scan_id}", get(devices::device_scan))
        .route("/api/v1/devices", get(devices::devices))
        .route("/api/v1/parcels/{id}/receipt/print", post(devices::reprint))
        .route("/api/v1/parcels", get(parcels::list))
        .route("/api/v1/parcels/{id}", get(parcels::detail))
        .route("/api/v1/parcels/{id}/photos", post(parcels::add_photo))
        .route("/api/v1/parcels/{id}/drop", post(parcels::drop_off))
        .route("/api/v1/parcels/{id}/accept", post(parcels::accept))
        .route("/api/v1/parcels/{id}/reject", post(parcels::reject))
        .route(
            "/api/v1/parcels/{id}/return-to-customer",
            post(parcels::return_to_customer),
        )
        .route("/api/v1/parcels/{id}/receipt", get(parcels::receipt))
        .route(
            "/api/v1/parcels/{id}/receipt.png",
            get(parcels::receipt_png),
        )
        .route(
            "/api/v1/parcels/{id}/receipt.svg",
            get(parcels::receipt_svg),
        )
        .route("/api/v1/returns", get(ops::lookup))
        .route("/api/v1/returns/{code}/progress", get(counter::progress))
        .route("/api/v1/bags", post(counter::open_bag).get(counter::bags))
        .route("/api/v1/bags/{id}", get(counter::bag))
        .route("/api/v1/bags/{id}/parcels", post(counter::bag_parcel))
        .route(
            "/api/v1/handovers",
            post(counter::hand_over).get(counter::handovers),
        )
        .route("/api/v1/handovers/{id}", get(counter::handover))
        .route("/api/v1/verify", get(counter::verify))
        .route("/api/v1/waybill-pools", get(ops::waybill_pools))
        .route("/api/v1/sessions", post(auth::login))
        .route(
            "/api/v1/clerks/{id}/sessions",
            axum::routing::delete(auth::end_clerk_sessions),
        )
        .route(
            "/api/v1/sessions/current",
            get(auth::current).delete(auth::logout),
        )
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/kiosk", get(ops::kiosk))
        .route("/api/v1/carriers", get(ops::carriers))
        .route("/api/v1/sync", get(ops::sync))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            station.clone(),
            count_errors,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight (see [`serve`] for the limits on connections).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = serve::Limits::at_start(&state.station.config().api);
    let open = std::sync::Arc::new(serve::Open::default());
    tracing::info!(
        open_files = limits.open_files,
        max_connections = limits.max_connections,
        "connection limits"
    );
    let info = std::sync::Arc::new(ServeInfo {
        limits: limits.clone(),
        open: open.clone(),
    });
    let app = router(state).layer(axum::Extension(info));
    serve::serve(app, listener, limits, open, shutdown).await
}

/// What `/healthz` says about the connections.
pub struct ServeInfo {
    pub limits: serve::Limits,
    pub open: std::sync::Arc<serve::Open>,
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

async fn count_errors(State(station): State<Station>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    station.metrics().http_status(response.status().as_u16());
    response
}
