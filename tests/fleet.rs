//! Fleet behaviour against real Mosquitto brokers (issue 22): failover
//! between brokers, reconnects spread after a broker restart, the retained
//! status a fleet dashboard reads, and `diagnostics.upload`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::platform::{Broker, FakePlatform, Subscriber, publish};
use crate::util::{TestStation, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// A station `n` of a fleet: its own ids, fast retries, the given brokers.
pub(crate) fn fleet_station(n: usize, urls: &[String], extra_sync: &str) -> TestStation {
    let list: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    TestStation::start_with(&format!(
        "[station]\nid = \"ST-F{n:04}\"\ndevice_id = \"kiosk-f{n:04}\"\nmin_photos = 0\n\
         [sync]\nretry_initial_ms = 50\nretry_max_s = 1\nstatus_interval_s = 3600\n{extra_sync}\n\
         [sync.mqtt]\nurls = [{}]\nkeep_alive_s = 5\n",
        list.join(", ")
    ))
}

pub(crate) fn events_topic(n: usize) -> String {
    format!("yizhan/v1/stations/ST-F{n:04}/events")
}

/// The last `seq` the station committed.
pub(crate) fn last_seq(st: &TestStation) -> i64 {
    st.db()
        .query_row(
            "SELECT value FROM counters WHERE name = 'event_seq'",
            [],
            |r| r.get(0),
        )
        .expect("event_seq")
}

/// Distinct seqs of station `n` among `messages`.
pub(crate) fn seqs_of(messages: &[Value], n: usize) -> HashSet<i64> {
    let id = format!("ST-F{n:04}");
    messages
        .iter()
        .filter(|m| m["station_id"] == id.as_str())
        .filter_map(|m| m["seq"].as_i64())
        .collect()
}

/// The station moves to the second broker when the first dies, and every
/// event reaches the platform: the second broker never had the session,
/// so the station resends what the first did not acknowledge.
#[test]
fn fails_over_to_the_next_broker_and_loses_nothing() {
    let mut first = Broker::start();
    let second = Broker::start();
    let sub_first = Subscriber::start(first.port, &events_topic(1));
    let sub_second = Subscriber::start(second.port, &events_topic(1));
    let urls = [
        format!("mqtt://127.0.0.1:{}", first.port),
        format!("mqtt://127.0.0.1:{}", second.port),
    ];
    let st = fleet_station(1, &urls, "reconnect_spread_ms = 200");
    wait_until("connected to the first broker", LONG, || {
        let v = st.sync_view();
        (v["mqtt_connected"] == true && v["mqtt_broker"] == urls[0].as_str()).then_some(())
    });
    for n in 0..5 {
        st.quick_checkin("FLEET", n);
    }
    let before = last_seq(&st);
    wait_until("the first events on the first broker", LONG, || {
        (seqs_of(&sub_first.messages(), 1).len() as i64 == before).then_some(())
    });
    first.kill();
    for n in 5..10 {
        st.quick_checkin("FLEET", n);
    }
    let all = last_seq(&st);
    wait_until("connected to the second broker", LONG, || {
        let v = st.sync_view();
        (v["mqtt_connected"] == true && v["mqtt_broker"] == urls[1].as_str()).then_some(())
    });
    wait_until("every event delivered", LONG, || {
        (st.sync_view()["pending_events"] == 0).then_some(())
    });
    let mut got = seqs_of(&sub_first.messages(), 1);
    got.extend(seqs_of(&sub_second.messages(), 1));
    let want: HashSet<i64> = (1..=all).collect();
    assert_eq!(got, want, "events lost in the failover");
    assert!(
        (before + 1..=all).all(|s| seqs_of(&sub_second.messages(), 1).contains(&s)),
        "the events after the failover went to the second broker"
    );
    assert!(st.sync_view()["mqtt_attempts_failed"].as_u64() >= Some(1));
}

/// After a broker restart, 20 stations reconnect spread over
/// `reconnect_spread_ms` (4 s) instead of in one burst. A statistical check
/// with a wide margin: 20 uniform draws over 4 s span less than 1.5 s with
/// probability below 1e-6, and put more than 10 into one 500 ms slot far
/// less often than that.
#[test]
fn reconnects_spread_over_the_window_after_a_broker_restart() {
    const N: usize = 20;
    let mut broker = Broker::start();
    let urls = [format!("mqtt://127.0.0.1:{}", broker.port)];
    let fleet: Vec<TestStation> = (0..N)
        .map(|n| fleet_station(100 + n, &urls, "reconnect_spread_ms = 4000"))
        .collect();
    let sessions = |st: &TestStation| st.sync_view()["mqtt_sessions"].as_u64().unwrap_or(0);
    for st in &fleet {
        wait_until("the fleet connected", LONG, || {
            (sessions(st) >= 1 && st.sync_view()["mqtt_connected"] == true).then_some(())
        });
    }
    broker.restart();
    let since: Vec<i64> = fleet
        .iter()
        .map(|st| {
            wait_until("each station back", LONG, || {
                let v = st.sync_view();
                (sessions(st) >= 2 && v["mqtt_connected"] == true)
                    .then(|| v["mqtt_connected_since"].as_str().map(str::to_owned))
                    .flatten()
            })
        })
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .expect("connected_since")
                .timestamp_millis()
        })
        .collect();
    let (lo, hi) = (since.iter().min().unwrap(), since.iter().max().unwrap());
    assert!(
        hi - lo >= 1500,
        "20 reconnects within {} ms: no spread",
        hi - lo
    );
    let busiest = since
        .iter()
        .map(|t| since.iter().filter(|u| (*u - t).abs() < 250).count())
        .max()
        .unwrap();
    assert!(
        busiest <= N / 2,
        "{busiest} of {N} reconnects within 500 ms"
    );
}

/// The retained status tells a fleet dashboard the version, each device's
/// state, whether the clock is trusted and the free disk.
#[test]
fn retained_status_carries_version_devices_clock_and_disk() {
    let broker = Broker::start();
    let urls = [format!("mqtt://127.0.0.1:{}", broker.port)];
    let st = TestStation::start_with(&format!(
        "[station]\nid = \"ST-F0900\"\ndevice_id = \"kiosk-f0900\"\n\
         [sync]\nretry_initial_ms = 50\n[sync.mqtt]\nurl = {:?}\n\
         [[hardware.scanners]]\nname = \"counter\"\nkind = \"serial\"\n\
         path = \"/nonexistent/ttyUSB9\"\nbaud = 9600\nchannel = \"clerk\"\n",
        urls[0]
    ));
    st.wait_mqtt_connected();
    // A subscriber that comes later gets the retained status.
    let sub = Subscriber::start(broker.port, "yizhan/v1/stations/ST-F0900/status");
    let status = wait_until("the retained status", LONG, || {
        sub.messages().into_iter().find(|m| m["online"] == true)
    });
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(status["free_disk_bytes"].as_u64() > Some(0), "{status}");
    assert!(status.get("clock_trusted").is_some(), "{status}");
    let scanner = &status["devices"]["counter"];
    assert_eq!(scanner["kind"], "scanner", "{status}");
    assert!(scanner["state"].is_string(), "{status}");
}

/// `diagnostics.upload` PUTs `status --json`, `db check` and the last log
/// lines under its `command_id`, once per id however often it is delivered.
#[test]
fn diagnostics_upload_puts_status_db_check_and_log_once_per_command() {
    let broker = Broker::start();
    let platform = FakePlatform::start(true);
    let st = TestStation::start_with(&format!(
        "[station]\nid = \"ST-F0901\"\ndevice_id = \"kiosk-f0901\"\n\
         [sync]\nretry_initial_ms = 50\n[sync.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
         [sync.https]\nbase_url = \"{}\"\n",
        broker.port,
        platform.base_url()
    ));
    // The station subscribes to its commands right after CONNACK and then
    // publishes its status: once the status is here, so is the
    // subscription (a command sent before it would have no session yet).
    let status = Subscriber::start(broker.port, "yizhan/v1/stations/ST-F0901/status");
    status.wait_for("the station's status", LONG, |m| m["online"] == true);
    let topic = "yizhan/v1/stations/ST-F0901/commands";
    let command = json!({"command_id": "diag/1 ?", "type": "diagnostics.upload", "data": {}});
    publish(broker.port, topic, command.to_string().as_bytes());
    let docs = || platform.state.diagnostics.lock().unwrap().clone();
    let (id, doc) = wait_until("the diagnostics", LONG, || docs().into_iter().next());
    assert_eq!(id, "diag/1 ?", "the id is one escaped path segment");
    assert_eq!(doc["command_id"], "diag/1 ?");
    assert_eq!(doc["station_id"], "ST-F0901");
    assert_eq!(doc["status"]["station_id"], "ST-F0901", "{doc}");
    assert_eq!(doc["status"]["daemon"], "running", "{doc}");
    assert_eq!(doc["db_check"]["ok"], true, "{doc}");
    assert_eq!(doc["db_check"]["integrity"], json!(["ok"]), "{doc}");
    assert_eq!(doc["sync"]["mqtt_connected"], true, "{doc}");
    let log: Vec<&str> = doc["log"]
        .as_array()
        .expect("log lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(log.iter().any(|l| l.contains("api listening")), "{log:?}");
    // Delivered again (QoS 1): recorded already, not uploaded again. A new
    // id is; once it is in, the duplicate had its chance.
    publish(broker.port, topic, command.to_string().as_bytes());
    let again = json!({"command_id": "diag-2", "type": "diagnostics.upload", "data": {}});
    publish(broker.port, topic, again.to_string().as_bytes());
    wait_until("the second diagnostics", LONG, || {
        docs().iter().any(|(id, _)| id == "diag-2").then_some(())
    });
    wait_until("both commands handled", LONG, || {
        (st.sync_view()["commands_applied"].as_u64() >= Some(3)).then_some(())
    });
    let ids: Vec<String> = docs().into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids.iter().filter(|i| *i == "diag/1 ?").count(),
        1,
        "{ids:?}"
    );
}
