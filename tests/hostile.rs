//! Clients that hold connections open (issue 19): half-sent requests,
//! bodies that never finish, idle keep-alive connections, more connections
//! than the daemon has file descriptors. Each is closed within seconds,
//! `/healthz` and check-ins go on answering, and running short is a 503
//! `busy`, never a 500.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{TestStation, wait_until};

const LONG: Duration = Duration::from_secs(30);

fn addr(st: &TestStation) -> String {
    st.base.trim_start_matches("http://").to_owned()
}

/// Raises this test process's own open-file limit (it opens hundreds of
/// sockets).
fn raise_own_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        },
    );
}

/// Whether the server closed `s` (end of stream, or a reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(0) => true,
        // A 503 or 408 answer, then the close.
        Ok(_) => matches!(s.read(&mut buf), Ok(0) | Err(_)),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The operator's report: 500 connections that send half a request and
/// wait, against a kiosk whose open-file limit is 256. Before: none was
/// ever closed, `/healthz` stopped answering and a photo upload got a 500
/// "Too many open files".
#[test]
fn half_sent_requests_are_closed_and_the_station_keeps_answering() {
    raise_own_fd_limit();
    let mut st = TestStation::create("[station]\nmin_photos = 1\n");
    st.fd_limit = Some(256);
    st.spawn();
    let (code, h) = st.get("/healthz");
    assert_eq!(code, 200);
    assert_eq!(h["connections"]["open_files_limit"], 256, "{h}");
    assert_eq!(h["connections"]["max"], (256 - 64) * 3 / 4, "{h}");

    let started = Instant::now();
    let mut attackers: Vec<TcpStream> = (0..500)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr(&st)).ok()?;
            let _ = s.write_all(b"POST /api/v1/scans HTTP/1.1\r\nHost: kiosk\r\nContent-Le");
            s.set_read_timeout(Some(Duration::from_millis(50))).ok()?;
            Some(s)
        })
        .collect();
    assert!(attackers.len() >= 450, "{} connected", attackers.len());

    // While they hang on, the station answers: at worst a quick 503 busy.
    let mut codes = Vec::new();
    wait_until("/healthz to answer 200", LONG, || {
        let (code, _) = st.get("/healthz");
        codes.push(code);
        (code == 200).then_some(())
    });
    assert!(
        codes.iter().all(|c| *c == 200 || *c == 503),
        "only 200 or 503, never a 500 or a hang: {codes:?}"
    );
    // Every half-sent request is closed within seconds (header timeout 5 s).
    wait_until("every half-sent request closed", LONG, || {
        attackers.retain_mut(|s| !closed_by_server(s));
        attackers.is_empty().then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "closed after {:?}",
        started.elapsed()
    );
    // A whole check-in with a photo works, and nothing answered 5xx but busy.
    st.checkin("RT-HOSTILE-0001", "SF1234567890123");
    let metrics = st.get_text("/metrics");
    let five: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("yizhan_http_errors_total{class=\"5xx\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(
        five, 0,
        "no 5xx from the router (503s at the door are not routed)"
    );
}

/// A body that starts and never finishes is answered 408 once
/// `api.body_timeout_s` has passed, however slowly it trickles.
#[test]
fn a_body_that_never_finishes_is_answered_408() {
    let st = TestStation::start_with("[api]\nbody_timeout_s = 2\n");
    let mut s = TcpStream::connect(addr(&st)).unwrap();
    s.write_all(
        b"POST /api/v1/scans HTTP/1.1\r\nHost: kiosk\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"code\"",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A byte every half second keeps the connection busy, not the body alive.
    let mut response = Vec::new();
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        let _ = s.write_all(b" ");
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");
}

/// A keep-alive connection that goes quiet is closed after
/// `api.idle_timeout_s`; the screen's event stream, which sends a
/// keep-alive every 15 s, is not idle.
#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let st = TestStation::start_with("[api]\nidle_timeout_s = 2\nheader_timeout_s = 30\n");
    let mut s = TcpStream::connect(addr(&st)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: the server closes it.
    let started = Instant::now();
    let eof = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(eof, "closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
