//! The retained presence message (SPEC §6.1, docs/PROTOCOL.md §2.2) against
//! a real Mosquitto: it says `online` whenever the station is connected,
//! whatever the order in which the broker publishes an earlier connection's
//! last will, and stays `offline` after a clean stop.
//!
//! The stations here publish their status only every hour on the timer, so
//! nothing but the rule under test can correct a wrong retained message.

use std::time::Duration;

use serde_json::{Value, json};

use crate::platform::{Broker, Proxy, Subscriber, free_port, publish_retained};
use crate::util::{TestStation, wait_until};

const STATUS: &str = "yizhan/v1/stations/ST-0001/status";
const LONG: Duration = Duration::from_secs(60);
/// "Within a few seconds" of the issue: the rule must correct the retained
/// status this fast (it does at once; the slack is for loaded CI machines).
const FEW: Duration = Duration::from_secs(8);

fn station_toml(mqtt_port: u16) -> String {
    format!(
        "[station]\nmin_photos = 0\n\
         [sync]\nretry_initial_ms = 50\nretry_max_s = 1\nreconnect_spread_ms = 100\nstatus_interval_s = 3600\n\
         [sync.mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nkeep_alive_s = 5\n"
    )
}

/// What a subscriber arriving now is given: the retained status.
fn retained(port: u16) -> Option<Value> {
    let late = Subscriber::start(port, STATUS);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Some(m) = late.messages().last() {
            return Some(m.clone());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn wait_retained_online(port: u16, what: &str) {
    wait_until(what, FEW, || {
        retained(port).filter(|m| m["online"] == true).map(|_| ())
    });
}

/// The late will, injected deterministically: while the station is
/// connected the broker's retained status becomes `{"online":false}`, as
/// when it publishes a dead connection's will after the new one announced
/// itself. The station answers with `online:true` at once. (Before the fix
/// the wrong status stayed until the next status interval: an hour here.)
#[test]
fn an_offline_status_published_while_connected_is_corrected_at_once() {
    let broker = Broker::start();
    let presence = Subscriber::start(broker.port, STATUS);
    let st = TestStation::start_with(&station_toml(broker.port));
    // Connected, and past the one extra status a few seconds after
    // connecting (the status timer's first tick repeats the first one).
    wait_until("the status again after connecting", LONG, || {
        let times: Vec<chrono::DateTime<chrono::Utc>> = presence
            .messages()
            .iter()
            .filter(|m| m["online"] == true)
            .filter_map(|m| m["at"].as_str()?.parse().ok())
            .collect();
        let (first, last) = (times.first()?, times.last()?);
        (*last - *first >= chrono::Duration::milliseconds(2500)).then_some(())
    });
    for round in 0..3 {
        let seen = presence.messages().len();
        publish_retained(broker.port, STATUS, br#"{"online":false}"#);
        wait_until("the will to arrive", FEW, || {
            (presence.messages().len() > seen).then_some(())
        });
        wait_until(&format!("online again (round {round})"), FEW, || {
            presence
                .messages()
                .last()
                .filter(|m| m["online"] == true)
                .map(|_| ())
        });
        wait_retained_online(broker.port, "the retained status online");
    }
    let (_, sync) = st.get("/api/v1/sync");
    assert!(
        sync["status_corrections"].as_u64() >= Some(3),
        "corrections are counted: {sync}"
    );
}

/// The operator's report: killed with `kill -9` mid-drain and started again
/// at once, several times; after each restart the retained status reads
/// online within a few seconds, and the last will of the killed process is
/// not what the fleet dashboard is left with.
#[test]
fn kill9_and_immediate_restart_ends_online_every_time() {
    let broker = Broker::start();
    let proxy = Proxy::start(broker.port, false);
    let mut st = TestStation::start_with(&station_toml(proxy.port));
    for round in 0..4 {
        // A backlog, so that the kill lands in the middle of a drain.
        for n in 0..20 {
            st.quick_checkin("PRES", round * 100 + n);
        }
        proxy.set_open(true);
        st.wait_mqtt_connected();
        st.kill9();
        st.spawn();
        wait_retained_online(broker.port, &format!("online after restart {round}"));
        proxy.set_open(false);
    }
}

/// A clean stop says offline and stays offline: nothing the station left
/// behind (the extra status after connecting, the correction rule) brings
/// the retained message back to online.
#[test]
fn a_clean_stop_stays_offline() {
    let broker = Broker::start();
    let presence = Subscriber::start(broker.port, STATUS);
    let mut st = TestStation::start_with(&format!(
        "{}[api]\nlisten = \"127.0.0.1:{}\"\n",
        station_toml(broker.port),
        free_port()
    ));
    presence.wait_for("online", LONG, |m| m["online"] == true);
    // Stopped before the extra status after connecting is due.
    assert!(st.terminate(), "clean exit");
    wait_until("offline", FEW, || {
        presence
            .messages()
            .last()
            .filter(|m| m["online"] == false)
            .map(|_| ())
    });
    // The process has exited: what is retained now stays.
    let late = wait_until("a late subscriber's retained status", FEW, || {
        retained(broker.port)
    });
    assert_eq!(late, json!({"online": false}));
    let last_online = presence
        .messages()
        .iter()
        .rposition(|m| m["online"] == true);
    let last_offline = presence
        .messages()
        .iter()
        .rposition(|m| m["online"] == false);
    assert!(
        last_offline > last_online,
        "the goodbye came last: {:?}",
        presence.messages()
    );
}

/// A station with e-waybill pools says how full they are in its retained
/// status, a pool below `station.waybill_low_water` marked `low`, so the
/// platform sends more before one runs dry (SPEC §2.5).
#[test]
fn the_retained_status_carries_the_waybill_pools() {
    let broker = Broker::start();
    let mut st = TestStation::create(
        &station_toml(broker.port).replace("[station]\n", "[station]\nwaybill_low_water = 5\n"),
    );
    let numbers = |prefix: &str, n: usize| -> Vec<String> {
        (1..=n).map(|i| format!("{prefix}{i:012}")).collect()
    };
    st.import_manifest(json!({"returns": [], "waybill_pools": [
        {"carrier": "SF", "numbers": numbers("SF9", 3)},
        {"carrier": "YTO", "numbers": numbers("YT8", 7)}
    ]}));
    st.spawn();
    let status = wait_until("a status with the pools", FEW, || {
        retained(broker.port).filter(|m| m["online"] == true && m.get("waybill_pools").is_some())
    });
    assert_eq!(
        status["waybill_pools"],
        json!([
            {"carrier": "SF", "remaining": 3, "low": true},
            {"carrier": "YTO", "remaining": 7, "low": false}
        ]),
        "{status}"
    );
}
