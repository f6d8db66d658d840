//! `GET /api/v1/stream`: server-sent events for the kiosk screen.
//!
//! Events: `scan` (a code was decided), `parcel` (a state change was
//! committed), `held` (the platform put parcels on hold), `device` and
//! `clock` (something the clerk should see), and `sync` (connection and
//! backlog, sent at once, then whenever it changes, checked every
//! [`SYNC_EVERY`]). Payloads carry ids and states only — nothing personal.
//!
//! Without a clerk session (`?token=`: an `EventSource` cannot send
//! headers) the stream carries nothing that identifies a parcel: no parcel
//! ids, no `parcel` events (issue 24). The customer screen needs only the
//! sync state and the scans of the kiosk's own scanner, which it fetches
//! by scan id. A client that falls behind gets a `lagged` event and should
//! reload what it shows.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::extract::QueryParams;
use crate::station::{Notice, Station};
use crate::sync::SyncState;

const SYNC_EVERY: Duration = Duration::from_secs(2);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// A clerk's session token.
    #[serde(default)]
    token: Option<String>,
}

pub async fn stream(
    State(st): State<Station>,
    State(sync): State<SyncState>,
    QueryParams(q): QueryParams<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let clerk = match q.token.as_deref() {
        Some(token) => Some(super::auth::authenticate(&st, token).await?),
        None => None,
    };
    let state = Follow {
        notices: st.notices(),
        station: st,
        sync,
        last_sync: None,
        tick: tokio::time::interval(SYNC_EVERY),
        clerk: clerk.is_some(),
    };
    let events = futures_util::stream::unfold(state, |mut f| async move {
        let event = f.next().await;
        Some((Ok(event), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follow {
    station: Station,
    sync: SyncState,
    notices: tokio::sync::broadcast::Receiver<Notice>,
    last_sync: Option<serde_json::Value>,
    tick: tokio::time::Interval,
    /// A clerk's stream: everything. Otherwise nothing identifying a parcel.
    clerk: bool,
}

impl Follow {
    async fn next(&mut self) -> Event {
        loop {
            tokio::select! {
                n = self.notices.recv() => match n {
                    Ok(notice) => match self.shown(notice) {
                        Some(notice) => return notice_event(&notice),
                        None => continue,
                    },
                    Err(RecvError::Lagged(missed)) => {
                        return Event::default().event("lagged").data(json!({"missed": missed}).to_string())
                    }
                    // The station outlives every stream; keep to sync ticks.
                    Err(RecvError::Closed) => self.tick.tick().await,
                },
                _ = self.tick.tick() => {
                    if let Some(ev) = self.sync_event().await {
                        return ev;
                    }
                    continue;
                }
            };
        }
    }

    /// What of `notice` this stream may carry.
    fn shown(&self, notice: Notice) -> Option<Notice> {
        if self.clerk {
            return Some(notice);
        }
        match notice {
            // The parcel on the counter scale is the clerk's business.
            Notice::Parcel { .. } | Notice::Weight { .. } => None,
            Notice::Scan {
                decision,
                reason,
                channel,
                ..
            } => Some(Notice::Scan {
                decision,
                reason,
                parcel_id: None,
                channel,
            }),
            other => Some(other),
        }
    }

    async fn sync_event(&mut self) -> Option<Event> {
        let view = crate::sync::view(self.station.db(), self.station.config(), &self.sync)
            .await
            .ok()?;
        let value = serde_json::to_value(&view).ok()?;
        // `oldest_pending_s` moves every second; send on what matters.
        let mut key = value.clone();
        if let Some(o) = key.as_object_mut() {
            o.remove("oldest_pending_s");
            o.remove("at");
        }
        if self.last_sync.as_ref() == Some(&key) {
            return None;
        }
        self.last_sync = Some(key);
        Some(Event::default().event("sync").data(value.to_string()))
    }
}

fn notice_event(n: &Notice) -> Event {
    let name = match n {
        Notice::Scan { .. } | Notice::DeviceScan { .. } => "scan",
        Notice::Device { .. } => "device",
        Notice::Parcel { .. } => "parcel",
        Notice::Held { .. } => "held",
        Notice::Clock { .. } => "clock",
        Notice::Weight { .. } => "weight",
    };
    Event::default()
        .event(name)
        .data(serde_json::to_string(n).unwrap_or_default())
}
