//! Prometheus metrics (`GET /metrics`, text format 0.0.4).
//!
//! Counters live in atomics bumped on the hot path; gauges (parcels per
//! state, outbox backlog, overdue parcels) are read from the database at
//! scrape time, so they are true after a restart too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use strum::{EnumCount, IntoEnumIterator};

use crate::code::Reason;

/// Counters since the daemon started.
#[derive(Debug, Default)]
pub struct Metrics {
    scans_accepted: AtomicU64,
    scans_provisional: AtomicU64,
    scans_rejected: [AtomicU64; Reason::COUNT],
    photos_stored: AtomicU64,
    photos_refused: AtomicU64,
    transitions: [AtomicU64; Counted::COUNT],
    http_client_errors: AtomicU64,
    http_server_errors: AtomicU64,
    /// Scans read by each device.
    device_scans: Mutex<BTreeMap<String, u64>>,
}

/// The transitions counted by the check-in path, labelled with their
/// event's type.
#[derive(Debug, Clone, Copy, strum::IntoStaticStr, strum::EnumIter, strum::EnumCount)]
pub enum Counted {
    #[strum(serialize = "parcel.dropped")]
    Dropped,
    #[strum(serialize = "parcel.accepted")]
    Accepted,
    #[strum(serialize = "parcel.rejected")]
    Rejected,
    #[strum(serialize = "parcel.photo_added")]
    PhotoAdded,
    #[strum(serialize = "parcel.handed_over")]
    HandedOver,
    #[strum(serialize = "parcel.bagged")]
    Bagged,
    #[strum(serialize = "parcel.returned_to_customer")]
    ReturnedToCustomer,
}

/// Database-derived values for one scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    pub parcels: Vec<(&'static str, i64)>,
    pub pending_events: i64,
    pub oldest_pending_s: i64,
    pub dead_letters: i64,
    pub last_seq: i64,
    pub overdue_parcels: i64,
    pub manifest_entries: i64,
    pub pending_photos: i64,
    pub dead_photos: i64,
    pub mqtt_connected: i64,
    pub events_delivered: i64,
    pub photos_uploaded: i64,
    pub last_delivery_ts: i64,
    /// Every device: name, kind, state.
    pub devices: Vec<(String, &'static str, &'static str)>,
    /// Print jobs waiting (None: no printer configured).
    pub print_queued: Option<i64>,
    /// 1 when the clock is trusted, 0 when not (None: not checked yet).
    pub clock_trusted: Option<i64>,
    /// Login locks started since start (a clerk's wrong PINs, a client's
    /// made-up ids).
    pub login_lockouts: u64,
    /// The e-waybill pools against their low-water mark.
    pub waybill_pools: Vec<crate::pool::Level>,
}

impl Metrics {
    pub fn scan(&self, outcome: Result<bool, Reason>) {
        match outcome {
            Ok(false) => self.scans_accepted.fetch_add(1, Ordering::Relaxed),
            Ok(true) => self.scans_provisional.fetch_add(1, Ordering::Relaxed),
            Err(r) => self.scans_rejected[r as usize].fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn transition(&self, t: Counted) {
        self.transitions[t as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn photo(&self, stored: bool) {
        let c = if stored {
            &self.photos_stored
        } else {
            &self.photos_refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A device read a scan.
    pub fn device_scan(&self, device: &str) {
        let mut scans = self.device_scans.lock().unwrap_or_else(|e| e.into_inner());
        *scans.entry(device.to_owned()).or_default() += 1;
    }

    pub fn http_status(&self, status: u16) {
        match status {
            400..=499 => self.http_client_errors.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.http_server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        self.render_counters(&mut out);
        render_gauges(&mut out, g);
        self.render_devices(&mut out, g);
        render_pools(&mut out, g);
        out
    }

    /// The counters kept here: scans, transitions, photos, HTTP errors.
    fn render_counters(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(
            out,
            "yizhan_scans_total",
            "counter",
            "Scan decisions since start.",
        );
        let _ = writeln!(
            out,
            "yizhan_scans_total{{decision=\"accept\"}} {}",
            get(&self.scans_accepted)
        );
        let _ = writeln!(
            out,
            "yizhan_scans_total{{decision=\"accept_provisional\"}} {}",
            get(&self.scans_provisional)
        );
        for (r, c) in Reason::iter().zip(&self.scans_rejected) {
            let _ = writeln!(
                out,
                "yizhan_scans_total{{decision=\"reject\",reason=\"{r}\"}} {}",
                get(c)
            );
        }
        header(
            out,
            "yizhan_transitions_total",
            "counter",
            "Committed parcel events since start.",
        );
        for (counted, c) in Counted::iter().zip(&self.transitions) {
            let name: &str = counted.into();
            let _ = writeln!(
                out,
                "yizhan_transitions_total{{type=\"{name}\"}} {}",
                get(c)
            );
        }
        header(
            out,
            "yizhan_photos_total",
            "counter",
            "Photo uploads since start.",
        );
        let _ = writeln!(
            out,
            "yizhan_photos_total{{result=\"stored\"}} {}",
            get(&self.photos_stored)
        );
        let _ = writeln!(
            out,
            "yizhan_photos_total{{result=\"refused\"}} {}",
            get(&self.photos_refused)
        );
        header(
            out,
            "yizhan_http_errors_total",
            "counter",
            "API error responses since start.",
        );
        let _ = writeln!(
            out,
            "yizhan_http_errors_total{{class=\"4xx\"}} {}",
            get(&self.http_client_errors)
        );
        let _ = writeln!(
            out,
            "yizhan_http_errors_total{{class=\"5xx\"}} {}",
            get(&self.http_server_errors)
        );
    }

    fn render_devices(&self, out: &mut String, g: &Gauges) {
        if g.devices.is_empty() {
            return;
        }
        header(
            out,
            "yizhan_device_up",
            "gauge",
            "1 while a device (scanner, printer, camera) works; its state in the label.",
        );
        for (name, kind, state) in &g.devices {
            let up = i64::from(*state == "ok");
            let _ = writeln!(
                out,
                "yizhan_device_up{{device=\"{name}\",kind=\"{kind}\",state=\"{state}\"}} {up}"
            );
        }
        let scans = self.device_scans.lock().unwrap_or_else(|e| e.into_inner());
        header(
            out,
            "yizhan_device_scans_total",
            "counter",
            "Codes read by each scanner since start.",
        );
        for (name, kind, _) in &g.devices {
            if *kind == "scanner" {
                let n = scans.get(name).copied().unwrap_or(0);
                let _ = writeln!(out, "yizhan_device_scans_total{{device=\"{name}\"}} {n}");
            }
        }
        if let Some(n) = g.print_queued {
            header(
                out,
                "yizhan_print_jobs_queued",
                "gauge",
                "Receipts and slips waiting for the printer.",
            );
            let _ = writeln!(out, "yizhan_print_jobs_queued {n}");
        }
    }
}

/// The e-waybill pools, one series per carrier.
fn render_pools(out: &mut String, g: &Gauges) {
    if g.waybill_pools.is_empty() {
        return;
    }
    header(
        out,
        "yizhan_waybill_pool_remaining",
        "gauge",
        "Free e-waybill numbers per carrier.",
    );
    for l in &g.waybill_pools {
        let _ = writeln!(
            out,
            "yizhan_waybill_pool_remaining{{carrier=\"{}\"}} {}",
            l.carrier, l.remaining
        );
    }
    header(
        out,
        "yizhan_waybill_pool_low",
        "gauge",
        "1 while a carrier's pool is below station.waybill_low_water.",
    );
    for l in &g.waybill_pools {
        let _ = writeln!(
            out,
            "yizhan_waybill_pool_low{{carrier=\"{}\"}} {}",
            l.carrier,
            i64::from(l.low)
        );
    }
}

/// What the database and the tasks said for this scrape.
fn render_gauges(out: &mut String, g: &Gauges) {
    header(out, "yizhan_parcels", "gauge", "Parcels by state.");
    for (state, n) in &g.parcels {
        let _ = writeln!(out, "yizhan_parcels{{state=\"{state}\"}} {n}");
    }
    let gauges = [
        (
            "yizhan_outbox_pending_events",
            "Committed events not yet delivered.",
            g.pending_events,
        ),
        (
            "yizhan_outbox_oldest_pending_seconds",
            "Age of the oldest undelivered event.",
            g.oldest_pending_s,
        ),
        (
            "yizhan_outbox_dead_letters",
            "Events the platform refused, waiting for an operator.",
            g.dead_letters,
        ),
        (
            "yizhan_outbox_last_seq",
            "Sequence number of the last committed event.",
            g.last_seq,
        ),
        (
            "yizhan_parcels_overdue",
            "Parcels in custody longer than station.pickup_sla_h.",
            g.overdue_parcels,
        ),
        (
            "yizhan_manifest_entries",
            "Returns in the local manifest.",
            g.manifest_entries,
        ),
        (
            "yizhan_photos_pending_upload",
            "Photos of parcels in custody not yet uploaded.",
            g.pending_photos,
        ),
        (
            "yizhan_photos_dead_letters",
            "Photos the platform refused, waiting for an operator.",
            g.dead_photos,
        ),
        (
            "yizhan_sync_mqtt_connected",
            "1 while the MQTT session is up.",
            g.mqtt_connected,
        ),
        (
            "yizhan_sync_last_delivery_timestamp_seconds",
            "Unix time of the last confirmed delivery since start (0: none).",
            g.last_delivery_ts,
        ),
    ];
    for (name, help, v) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    for (name, help, v) in [
        (
            "yizhan_sync_events_delivered_total",
            "Events confirmed by the platform since start.",
            g.events_delivered,
        ),
        (
            "yizhan_sync_photos_uploaded_total",
            "Photos confirmed by the platform since start.",
            g.photos_uploaded,
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    header(
        out,
        "yizhan_login_lockouts_total",
        "counter",
        "Login locks started since start: a clerk after wrong PINs, or a client trying made-up clerk ids.",
    );
    let _ = writeln!(out, "yizhan_login_lockouts_total {}", g.login_lockouts);
    if let Some(v) = g.clock_trusted {
        header(
            out,
            "yizhan_clock_trusted",
            "gauge",
            "1 while the clock is synchronised and not behind the last event; 0 while events carry clock_trusted:false.",
        );
        let _ = writeln!(out, "yizhan_clock_trusted {v}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.scan(Ok(false));
        m.scan(Err(Reason::Expired));
        m.transition(Counted::Accepted);
        let g = Gauges {
            parcels: vec![("accepted", 3)],
            pending_events: 4,
            ..Gauges::default()
        };
        let text = m.render(&g);
        for want in [
            "yizhan_scans_total{decision=\"accept\"} 1",
            "yizhan_scans_total{decision=\"reject\",reason=\"expired\"} 1",
            "yizhan_transitions_total{type=\"parcel.accepted\"} 1",
            "yizhan_parcels{state=\"accepted\"} 3",
            "yizhan_outbox_pending_events 4",
            "# TYPE yizhan_parcels gauge",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }

    /// Every reason is counted under the name the API gives it, and every
    /// counted transition under its event's type.
    #[test]
    fn every_reason_and_transition_has_its_series() {
        let m = Metrics::default();
        for r in Reason::iter() {
            m.scan(Err(r));
        }
        for t in Counted::iter() {
            m.transition(t);
        }
        let text = m.render(&Gauges::default());
        for r in Reason::iter() {
            let name = serde_json::to_value(r).unwrap();
            let name = name.as_str().unwrap();
            assert_eq!(r.to_string(), name);
            let want = format!("yizhan_scans_total{{decision=\"reject\",reason=\"{name}\"}} 1");
            assert!(text.contains(&want), "{want} missing from\n{text}");
        }
        for t in Counted::iter() {
            let name: &str = t.into();
            assert!(name.starts_with("parcel."), "{name}");
            let want = format!("yizhan_transitions_total{{type=\"{name}\"}} 1");
            assert!(text.contains(&want), "{want} missing from\n{text}");
        }
    }
}
