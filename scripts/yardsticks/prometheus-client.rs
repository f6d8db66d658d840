//! Binary-size yardstick: the same metric set written by hand and through
//! prometheus-client; the scrape output goes to stdout.
use std::hint::black_box;

const REASONS: [&str; 7] = ["malformed", "bad_signature", "wrong_station", "expired", "cancelled", "already_dropped_off", "unknown_code"];
const GAUGES: [(&str, &str); 10] = [
    ("yizhan_outbox_pending_events", "a"), ("yizhan_outbox_oldest_pending_seconds", "b"),
    ("yizhan_outbox_dead_letters", "c"), ("yizhan_outbox_last_seq", "d"), ("yizhan_parcels_overdue", "e"),
    ("yizhan_manifest_entries", "f"), ("yizhan_photos_pending_upload", "g"), ("yizhan_photos_dead_letters", "h"),
    ("yizhan_sync_mqtt_connected", "i"), ("yizhan_sync_last_delivery_timestamp_seconds", "j"),
];

#[cfg(not(feature = "pc"))]
fn render(n: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP yizhan_scans_total Scans.\n# TYPE yizhan_scans_total counter");
    for r in REASONS {
        let _ = writeln!(out, "yizhan_scans_total{{decision=\"reject\",reason=\"{r}\"}} {n}");
    }
    for (name, help) in GAUGES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {n}");
    }
    out
}

#[cfg(feature = "pc")]
fn render(n: u64) -> String {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
    use prometheus_client::registry::Registry;
    let mut reg = Registry::default();
    let scans = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    reg.register("yizhan_scans", "Scans.", scans.clone());
    for r in REASONS {
        scans.get_or_create(&vec![("decision", "reject"), ("reason", r)]).inc_by(n);
    }
    for (name, help) in GAUGES {
        let g = Gauge::<i64>::default();
        g.set(n as i64);
        reg.register(name, help, g);
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String");
    out
}

fn main() {
    print!("{}", render(black_box(std::env::args().count() as u64)));
}
