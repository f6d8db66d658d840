//! Start, stop and restart: graceful shutdown, schema refusal, drafts
//! expiring.

use std::time::Duration;

use crate::util::{TestStation, wait_until};

#[test]
fn sigterm_finishes_cleanly_and_everything_acknowledged_is_kept() {
    let mut st = TestStation::start();
    let receipt = st.checkin("RT-TERM-0001", "SF8200000000001");
    assert!(
        st.terminate(),
        "exit status 0 on SIGTERM:\n{}",
        st.log_text()
    );
    assert!(
        st.log_text().contains("database closed cleanly"),
        "{}",
        st.log_text()
    );
    // A clean close leaves no WAL behind.
    let wal = st.db_path().with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    st.spawn();
    let (status, parcel) = st.get(&format!(
        "/api/v1/parcels/{}",
        receipt["parcel_id"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    assert_eq!(parcel["state"], "accepted");
}

/// A SIGTERM that arrives while the daemon is still starting (systemd
/// stopping a unit that has just started; a test stopping a station as soon
/// as it shows up on the broker) is a clean stop, not a death by signal.
#[test]
fn sigterm_while_starting_is_a_clean_stop() {
    let mut st = TestStation::create("");
    st.launch();
    st.wait_for_log("starting", Duration::from_secs(30));
    assert!(st.terminate(), "exit status 0 on an early SIGTERM");
    let log = st.log_text();
    assert!(log.contains("database closed cleanly"), "{log}");
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let mut st = TestStation::start();
    st.terminate();
    let rw = rusqlite::Connection::open(st.db_path()).unwrap();
    rw.pragma_update(None, "user_version", 999).unwrap();
    drop(rw);
    let out = st.cli(&["run"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("schema version 999"), "{text}");
    assert!(text.contains("newer"), "{text}");
}

#[test]
fn stale_drafts_are_discarded_with_their_photos() {
    let mut st = TestStation::start();
    let id = st.draft("RT-STALE-001", "clerk");
    let photo = st.photo(&id, "label", 5);
    let kept = st.checkin("RT-KEEP-0001", "SF8300000000001");
    st.terminate();
    let rw = rusqlite::Connection::open(st.db_path()).unwrap();
    rw.execute(
        "UPDATE parcels SET created_at = '2020-01-01T00:00:00.000Z' WHERE state = 'draft'",
        [],
    )
    .unwrap();
    drop(rw);
    st.spawn();
    wait_until("draft discarded", Duration::from_secs(20), || {
        let (status, _) = st.get(&format!("/api/v1/parcels/{id}"));
        (status == 404).then_some(())
    });
    let sha = photo["sha256"].as_str().unwrap();
    let file = st
        .data_dir()
        .join("photos")
        .join(&sha[..2])
        .join(format!("{sha}.jpg"));
    assert!(!file.exists(), "the draft's photo went with it");
    let (status, _) = st.get(&format!(
        "/api/v1/parcels/{}",
        kept["parcel_id"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "parcels in custody are never discarded");
}

#[test]
fn tells_systemd_it_is_ready_pings_the_watchdog_and_says_stopping() {
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut st = TestStation::create("");
    st.env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "200000".into()),
    ];
    st.spawn();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.starts_with("READY=1"), "{first}");
    // READY comes only once the API answers.
    let (code, _) = st.get("/healthz");
    assert_eq!(code, 200);
    for _ in 0..3 {
        assert_eq!(recv(), "WATCHDOG=1");
    }
    assert!(st.terminate());
    let stopping = wait_until("STOPPING=1", Duration::from_secs(10), || {
        let m = recv();
        m.starts_with("STOPPING=1").then_some(m)
    });
    assert!(stopping.contains("STATUS=stopping"));
}

/// Issue 19: a second `yizhan run` on a running station used to apply
/// migrations and rewrite `operator.token` before failing on the port
/// (every script using the token got 401), and with another port it ran a
/// second daemon on the same database. Now it stops first, naming the
/// running one, and changes nothing.
#[test]
fn a_second_daemon_on_the_same_data_dir_exits_naming_the_first() {
    let port = crate::platform::free_port();
    let st = TestStation::start_with(&format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    let token_file = st.data_dir().join("operator.token");
    let before = (
        std::fs::read_to_string(&token_file).unwrap(),
        std::fs::metadata(&token_file).unwrap().modified().unwrap(),
    );
    let first = format!("pid {} listening on 127.0.0.1:{port}", st.pid().unwrap());
    // The same configuration: the port is taken, by this station's daemon.
    let same = st.cli(&["run"]);
    assert!(!same.status.success());
    let text = String::from_utf8_lossy(&same.stderr);
    assert!(
        text.contains("another yizhan is running on this data directory") && text.contains(&first),
        "{text}"
    );
    // Another port, the same data directory: refused by the lock.
    let other = crate::platform::free_port();
    let mut cmd = crate::util::yizhan();
    let out = cmd
        .arg("--config")
        .arg(&st.config)
        .arg("run")
        .env_remove("YIZHAN_CONFIG")
        .env("YIZHAN_API__LISTEN", format!("127.0.0.1:{other}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&first), "{text}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", other)).is_err(),
        "the second daemon never served"
    );
    // The running daemon's token is untouched and still opens clerk endpoints.
    let after = (
        std::fs::read_to_string(&token_file).unwrap(),
        std::fs::metadata(&token_file).unwrap().modified().unwrap(),
    );
    assert_eq!(before, after);
    let (code, _) = st.get("/api/v1/sync");
    assert_eq!(code, 200);
    // The CLI still works beside the daemon.
    st.cli_json(&["status"]);
}

/// A start that cannot bind its port writes nothing to the data directory:
/// no database, no device key, no token.
#[test]
fn a_start_that_cannot_serve_changes_nothing_on_disk() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let st = TestStation::create(&format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    let out = st.cli(&["run"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("another program has this port"), "{text}");
    assert!(
        !st.data_dir().exists(),
        "nothing written: {:?}",
        std::fs::read_dir(st.data_dir()).map(|d| d.count())
    );
}

/// Issue 19: a kiosk whose clock is wrong used to say so only inside each
/// event (`clock_trusted:false`). Booting "in 1970", behind the last event,
/// is now a warning in the log, `clock` on `/healthz`, a line in `status`,
/// a metric and a flag for the screen. The daemon's clock hook
/// (`YIZHAN_CLOCK_OFFSET_S`) moves its clock, not the machine's.
#[test]
fn a_clock_behind_the_last_event_is_visible_everywhere() {
    let port = crate::platform::free_port();
    let mut st = TestStation::start_with(&format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    st.checkin("RT-CLOCK-0001", "SF8200000000101");
    let (_, h) = st.get("/healthz");
    assert_eq!(h["clock"]["trusted"], true, "{h}");
    assert!(st.terminate());
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 2 January 1970.
    st.env.push((
        "YIZHAN_CLOCK_OFFSET_S".into(),
        (86_400 - since_epoch).to_string(),
    ));
    st.spawn();
    st.wait_for_log("the clock cannot be trusted", Duration::from_secs(30));
    let (_, h) = st.get("/healthz");
    assert_eq!(h["clock"]["trusted"], false, "{h}");
    assert!(
        h["clock"]["reason"]
            .as_str()
            .unwrap()
            .contains("earlier than the last event"),
        "{h}"
    );
    assert!(st.get_text("/metrics").contains("yizhan_clock_trusted 0"));
    let text = String::from_utf8(st.cli(&["status"]).stdout).unwrap();
    assert!(text.contains("CLOCK:     NOT TRUSTED"), "{text}");
    let (_, kiosk) = st.request_as(None, "GET", "/api/v1/kiosk", None);
    assert_eq!(kiosk["clock_trusted"], false);
    // Check-ins go on; their events say the time is not to be trusted.
    st.checkin("RT-CLOCK-0002", "SF8200000000102");
    let (at, trusted): (String, String) = st
        .db()
        .query_row(
            "SELECT e.occurred_at, b.body FROM events e JOIN event_bodies b USING (seq) ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(at.starts_with("1970-01-02"), "{at}");
    assert!(trusted.contains("\"clock_trusted\":false"), "{trusted}");
}
