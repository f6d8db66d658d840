//! `kill -9` at random points while check-ins are in flight, many times:
//! every check-in that got a 2xx survives with its photos, `seq` stays
//! gap-free, the database passes `integrity_check`, no file is orphaned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::util::{TestStation, png};

/// `kill -9` rounds: `YIZHAN_KILL9_ROUNDS` (the soak runs a thousand), 15
/// in CI.
fn rounds() -> usize {
    std::env::var("YIZHAN_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
}
const CLIENTS: usize = 2;

/// A check-in the daemon acknowledged with a 2xx.
#[derive(Debug, Clone)]
struct Acked {
    parcel_id: String,
    photo_sha: String,
    waybill: String,
}

/// Drives check-ins until the daemon stops answering; records every ack.
fn client_loop(
    client: Client,
    base: String,
    tag: String,
    serial: Arc<AtomicU64>,
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
) {
    let post = |path: &str, body: reqwest::blocking::Body| -> Option<(u16, Value)> {
        let r = client
            .post(format!("{base}{path}"))
            .body(body)
            .send()
            .ok()?;
        let status = r.status().as_u16();
        let v = serde_json::from_str(&r.text().ok()?).unwrap_or(Value::Null);
        Some((status, v))
    };
    while !stop.load(Ordering::Relaxed) {
        let n = serial.fetch_add(1, Ordering::Relaxed);
        let rn = format!("RT-{tag}-{n:06}");
        let Some((200, scan)) = post(
            "/api/v1/scans",
            json!({"code": rn, "channel": "clerk"}).to_string().into(),
        ) else {
            return;
        };
        let id = scan["parcel_id"].as_str().expect("accepted").to_owned();
        let Some((201, photo)) = post(
            &format!("/api/v1/parcels/{id}/photos?kind=label"),
            png(40, 30, n as u8).into(),
        ) else {
            return;
        };
        let waybill = format!("SF{:012}", 100_000_000 + n);
        let Some((status, body)) = post(
            &format!("/api/v1/parcels/{id}/accept"),
            json!({"waybill_no": waybill}).to_string().into(),
        ) else {
            return;
        };
        assert_eq!(status, 200, "accept refused: {body}");
        acked.lock().unwrap().push(Acked {
            parcel_id: id,
            photo_sha: photo["sha256"].as_str().unwrap().to_owned(),
            waybill,
        });
    }
}

#[test]
fn acknowledged_checkins_survive_kill_9_at_random_points() {
    let mut st = TestStation::start();
    let serial = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("YIZHAN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20261122),
    );
    let rounds = rounds();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (client, base, serial, acked, stop) = (
                    st.client.clone(),
                    st.base.clone(),
                    serial.clone(),
                    acked.clone(),
                    stop.clone(),
                );
                let tag = format!("R{round:02}C{c}");
                std::thread::spawn(move || client_loop(client, base, tag, serial, acked, stop))
            })
            .collect();
        // Let some check-ins land, then kill at a random moment.
        crate::util::wait_until("first ack of the round", Duration::from_secs(30), || {
            (acked.lock().unwrap().len() > before).then_some(())
        });
        std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        st.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client thread");
        }
        st.spawn();
        // This round's check-ins, and a sample of the earlier ones (all of
        // them every 50 rounds, and at the end), so that a thousand rounds
        // do not take quadratic time.
        let all = acked.lock().unwrap().clone();
        let full = round % 50 == 49 || round + 1 == rounds;
        let sample: Vec<Acked> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| full || *i >= before || rng.u8(..) < 8)
            .map(|(_, a)| a.clone())
            .collect();
        verify(&st, &sample, round);
    }
    let total = acked.lock().unwrap().len();
    assert!(total >= rounds, "only {total} check-ins acknowledged");
    eprintln!("SOAK kill9 rounds={rounds} acknowledged={total} lost=0");
}

fn verify(st: &TestStation, acked: &[Acked], round: usize) {
    let db = st.db();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "round {round}");
    let (count, min, max): (i64, i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let counter: i64 = db
        .query_row(
            "SELECT value FROM counters WHERE name = 'event_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (min, max, counter),
        (1, count, count),
        "round {round}: seq must run 1..=n without gaps"
    );
    // Everything read in three passes, then checked in memory: a thousand
    // rounds hold tens of thousands of check-ins.
    let parcels: std::collections::HashMap<String, (String, Option<String>)> = db
        .prepare("SELECT id, state, waybill_no FROM parcels")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut accepted_events: std::collections::HashMap<String, usize> = Default::default();
    for id in db
        .prepare("SELECT parcel_id FROM events WHERE type = 'parcel.accepted'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
    {
        *accepted_events.entry(id.unwrap()).or_default() += 1;
    }
    let links: std::collections::HashSet<(String, String)> = db
        .prepare("SELECT parcel_id, sha256 FROM parcel_photos")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for a in acked {
        let (state, waybill) = parcels
            .get(&a.parcel_id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged {a:?} lost"));
        assert_eq!(
            (state.as_str(), waybill.as_deref()),
            ("accepted", Some(a.waybill.as_str())),
            "round {round}"
        );
        assert_eq!(
            accepted_events.get(&a.parcel_id),
            Some(&1),
            "round {round}: {a:?}"
        );
        assert!(
            links.contains(&(a.parcel_id.clone(), a.photo_sha.clone())),
            "round {round}: photo row of {a:?}"
        );
        let file = st
            .data_dir()
            .join("photos")
            .join(&a.photo_sha[..2])
            .join(format!("{}.jpg", a.photo_sha));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("round {round}: photo file {file:?}: {e}"));
        assert!(
            image::load_from_memory(&bytes).is_ok(),
            "round {round}: photo file is a whole JPEG"
        );
    }
    let check = st.cli_json(&["db", "check"]);
    assert_eq!(check["seq_gaps"], 0, "round {round}: {check}");
    assert_eq!(
        check["photos"]["orphan_files"],
        json!([]),
        "round {round}: {check}"
    );
    assert_eq!(
        check["photos"]["missing_files"],
        json!([]),
        "round {round}: {check}"
    );
}
