//! What the sync tasks report about themselves, for `/api/v1/sync`,
//! `/metrics`, `yizhan status` and the MQTT presence message.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{Notify, watch};

/// Live delivery state since the daemon started (not persisted: after a
/// restart the database still tells what is pending and delivered).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Live {
    pub mqtt_connected: bool,
    pub mqtt_connected_since: Option<String>,
    pub mqtt_last_error: Option<String>,
    pub https_reachable: Option<bool>,
    pub https_last_error: Option<String>,
    pub last_delivery_at: Option<String>,
    pub events_delivered: u64,
    pub photos_uploaded: u64,
    pub manifest_last_pull_at: Option<String>,
    pub manifest_last_error: Option<String>,
    pub commands_applied: u64,
    pub commands_malformed: u64,
    /// Times an `online:false` for this station (an earlier connection's
    /// last will) was seen while connected and corrected.
    pub status_corrections: u64,
    /// The broker of the current (or last) connection attempt.
    pub mqtt_broker: Option<String>,
    /// MQTT sessions established (CONNACKs) since the daemon started.
    pub mqtt_sessions: u64,
    /// Connection attempts that failed before a session was established.
    pub mqtt_attempts_failed: u64,
}

/// Shared handle to the live state and the signals between sync tasks.
#[derive(Clone)]
pub struct SyncState {
    inner: Arc<Inner>,
}

struct Inner {
    live: Mutex<Live>,
    mqtt_up: watch::Sender<bool>,
    manifest_refresh: Notify,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            inner: Arc::new(Inner {
                live: Mutex::new(Live::default()),
                mqtt_up: watch::channel(false).0,
                manifest_refresh: Notify::new(),
            }),
        }
    }
}

impl SyncState {
    /// A copy of the live state.
    pub fn snapshot(&self) -> Live {
        self.live().clone()
    }

    /// Changes the live state.
    pub fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live());
    }

    /// `n` events confirmed by the platform at `at`.
    pub fn delivered(&self, n: usize, at: String) {
        self.update(|l| {
            l.events_delivered += n as u64;
            l.last_delivery_at = Some(at);
        });
    }

    pub fn set_mqtt_connected(&self, up: bool, error: Option<String>) {
        self.update(|l| {
            if up && !l.mqtt_connected {
                l.mqtt_connected_since = Some(crate::clock::now_string());
            }
            if !up {
                l.mqtt_connected_since = None;
            }
            l.mqtt_connected = up;
            if error.is_some() || up {
                l.mqtt_last_error = error;
            }
        });
        self.inner.mqtt_up.send_replace(up);
    }

    /// Follows whether MQTT is connected (the HTTPS fallback of `auto`).
    pub fn watch_mqtt(&self) -> watch::Receiver<bool> {
        self.inner.mqtt_up.subscribe()
    }

    /// Asks the manifest task to pull now.
    pub fn request_manifest_refresh(&self) {
        self.inner.manifest_refresh.notify_one();
    }

    pub async fn manifest_refresh_requested(&self) {
        self.inner.manifest_refresh.notified().await;
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // The guarded value is plain data; a panic elsewhere cannot leave
        // it half-written in a way that matters, so take it even if poisoned.
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}
