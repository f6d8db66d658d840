//! The other side of the contract, for the sync tests: a real Mosquitto
//! broker on a free port, an MQTT subscriber playing the platform, an
//! in-test fake platform HTTP server implementing SPEC §6.2, and a TCP proxy
//! that can take the station's network away, cut it or stall it.
//!
//! The station always reaches the broker through a [`Proxy`]; the platform's
//! subscriber connects directly. "Network down" is the proxy closed, so the
//! platform's subscription can be in place before the station can publish.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::util::wait_until;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn wait_listening(port: u16, what: &str) {
    wait_until(what, Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

/// TLS files for a broker listener.
#[derive(Clone)]
pub struct BrokerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_client_cert: bool,
}

/// A Mosquitto broker with no persistence: a restart forgets every session.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    tls: Option<BrokerTls>,
    /// Extra mosquitto.conf lines (authentication, say).
    extra: String,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(None)
    }

    pub fn start_with(tls: Option<BrokerTls>) -> Broker {
        Broker::start_conf(tls, "")
    }

    /// A broker whose config also holds `extra` lines.
    pub fn start_conf(tls: Option<BrokerTls>, extra: &str) -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: tempfile::tempdir().expect("broker dir"),
            tls,
            extra: extra.to_owned(),
            child: None,
        };
        b.spawn();
        b
    }

    /// The broker's own directory (for password files and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let mut conf = format!(
            "listener {} 127.0.0.1\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 0\nuser root\n{}\n",
            self.port,
            if self.extra.is_empty() {
                "allow_anonymous true"
            } else {
                &self.extra
            }
        );
        if let Some(t) = &self.tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                t.require_client_cert
            ));
        }
        let path = self.dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).expect("broker conf");
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        wait_listening(self.port, "mosquitto to listen");
    }

    /// Kills the broker (its sessions and queues are gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A fresh broker on the same port, remembering nothing.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn mosquitto() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto")
}

/// The platform's MQTT side: a persistent-session subscriber that records
/// every message on `topic` (JSON payloads).
pub struct Subscriber {
    pub received: Arc<Mutex<Vec<Value>>>,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    client: rumqttc::Client,
}

impl Subscriber {
    /// Connects and waits until the subscription is in place.
    pub fn start(port: u16, topic: &str) -> Subscriber {
        let mut opts =
            rumqttc::MqttOptions::new(format!("platform-{}", ulid::Ulid::new()), "127.0.0.1", port);
        opts.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = rumqttc::Client::new(opts, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, rd, st, c, t) = (
            received.clone(),
            ready.clone(),
            stop.clone(),
            client.clone(),
            topic.to_owned(),
        );
        std::thread::spawn(move || {
            use rumqttc::{Event, Packet, QoS};
            while !st.load(Ordering::Relaxed) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        let _ = c.try_subscribe(t.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => rd.store(true, Ordering::SeqCst),
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        let v = serde_json::from_slice(&p.payload)
                            .unwrap_or_else(|_| Value::String(format!("{:?}", p.payload)));
                        r.lock().unwrap().push(v);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        rd.store(false, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Err(rumqttc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        let s = Subscriber {
            received,
            ready,
            stop,
            client,
        };
        s.wait_ready();
        s
    }

    pub fn wait_ready(&self) {
        wait_until("the platform subscription", Duration::from_secs(20), || {
            self.ready.load(Ordering::SeqCst).then_some(())
        });
    }

    pub fn messages(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a message received so far matches `pred`; returns the
    /// first that does.
    pub fn wait_for(&self, what: &str, deadline: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, deadline, || {
            self.received
                .lock()
                .unwrap()
                .iter()
                .find(|m| pred(m))
                .cloned()
        })
    }

    /// Distinct `seq` numbers received so far.
    pub fn seqs(&self) -> HashSet<i64> {
        self.messages()
            .iter()
            .filter_map(|m| m["seq"].as_i64())
            .collect()
    }

    /// Waits until every seq in `1..=n` has arrived.
    pub fn wait_for_seqs(&self, n: i64, deadline: Duration) {
        wait_until(&format!("events seq 1..={n}"), deadline, || {
            let seqs = self.seqs();
            (1..=n).all(|s| seqs.contains(&s)).then_some(())
        });
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// Publishes one message at QoS 1 (the platform sending a command).
pub fn publish(port: u16, topic: &str, payload: &[u8]) {
    mosquitto_pub(port, topic, payload, false);
}

/// Publishes one retained message at QoS 1 (what the broker does with a
/// last will).
pub fn publish_retained(port: u16, topic: &str, payload: &[u8]) {
    mosquitto_pub(port, topic, payload, true);
}

fn mosquitto_pub(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(if retain { &["-r"][..] } else { &[][..] })
        .args(["-t", topic, "-s"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(payload)?;
            c.wait()
        })
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(status.success(), "mosquitto_pub failed");
}

/// A TCP proxy between the station and the broker.
pub struct Proxy {
    pub port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: u16,
    open: AtomicBool,
    stalled: AtomicBool,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    accepted: AtomicUsize,
}

impl Proxy {
    /// A proxy to `upstream`, open or closed.
    pub fn start(upstream: u16, open: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            upstream,
            open: AtomicBool::new(open),
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !st.open.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", st.upstream)) else {
                    continue;
                };
                st.accepted.fetch_add(1, Ordering::Relaxed);
                {
                    let mut conns = st.conns.lock().unwrap();
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    st.clone(),
                );
                pipe(server, client, st.clone());
            }
        });
        Proxy { port, state }
    }

    /// Opens or closes the way; closing cuts every connection.
    pub fn set_open(&self, open: bool) {
        self.state.open.store(open, Ordering::SeqCst);
        if !open {
            self.cut();
        }
    }

    /// Cuts every connection now (the station will reconnect).
    pub fn cut(&self) {
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Stops forwarding bytes (connections stay up but go silent).
    pub fn stall(&self, stalled: bool) {
        self.state.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, st: Arc<ProxyState>) {
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 16 * 1024];
        loop {
            if st.stop.load(Ordering::Relaxed) {
                break;
            }
            if st.stalled.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// What the fake platform has received and how it behaves.
#[derive(Default)]
pub struct PlatformState {
    /// Every event envelope received, duplicates included, in order.
    pub events: Mutex<Vec<Value>>,
    seen: Mutex<HashSet<String>>,
    /// Photos by the sha256 in their URL.
    pub photos: Mutex<HashMap<String, Vec<u8>>>,
    /// The manifest it serves.
    pub manifest: Mutex<Vec<Value>>,
    pub manifest_gets: AtomicUsize,
    /// While false, every request gets a 503.
    pub up: AtomicBool,
    /// Events for this return number are rejected (dead letters).
    pub reject_return: Mutex<Option<String>>,
    /// The bearer token it wants, if any.
    pub token: Mutex<Option<String>>,
    pub unauthorized: AtomicUsize,
    /// Every event batch POSTed.
    pub event_posts: AtomicUsize,
    /// While set, every event batch is answered with this status.
    pub events_status: Mutex<Option<u16>>,
    /// Every diagnostics document PUT, with the `command_id` of its URL.
    pub diagnostics: Mutex<Vec<(String, Value)>>,
}

/// The platform's HTTPS side, over plain HTTP or TLS.
pub struct FakePlatform {
    pub port: u16,
    pub state: Arc<PlatformState>,
    base_url: String,
    _rt: tokio::runtime::Runtime,
}

/// Accepts TLS connections for the fake platform.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A failed handshake (wrong CA, no client certificate) is the
            // client's problem; keep serving.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl FakePlatform {
    /// The platform over HTTPS with `server` (certificate, and client
    /// certificate verification for mutual TLS).
    pub fn start_tls(server: rustls::ServerConfig) -> FakePlatform {
        FakePlatform::start_inner(true, Some(server))
    }

    pub fn start(up: bool) -> FakePlatform {
        FakePlatform::start_inner(up, None)
    }

    fn start_inner(up: bool, tls: Option<rustls::ServerConfig>) -> FakePlatform {
        let state = Arc::new(PlatformState::default());
        state.up.store(up, Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/v1/stations/{sid}/events", post(events))
            .route("/v1/stations/{sid}/photos/{sha}", put(photo))
            .route("/v1/stations/{sid}/manifest", get(manifest))
            .route("/v1/stations/{sid}/diagnostics/{id}", put(diagnostics))
            .with_state(state.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        match tls {
            Some(config) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                };
                rt.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
            }
            None => {
                rt.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
            }
        }
        FakePlatform {
            port,
            state,
            base_url: format!("{scheme}://127.0.0.1:{port}"),
            _rt: rt,
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().unwrap().clone()
    }

    pub fn seqs(&self) -> HashSet<i64> {
        self.events()
            .iter()
            .filter_map(|e| e["seq"].as_i64())
            .collect()
    }

    pub fn photos(&self) -> HashMap<String, Vec<u8>> {
        self.state.photos.lock().unwrap().clone()
    }
}

fn gate(st: &PlatformState, headers: &HeaderMap) -> Result<(), StatusCode> {
    if !st.up.load(Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    if let Some(want) = st.token.lock().unwrap().as_deref() {
        let got = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != format!("Bearer {want}") {
            st.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Err(StatusCode::UNAUTHORIZED);
        }
    }
    Ok(())
}

async fn events(
    State(st): State<Arc<PlatformState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    gate(&st, &headers)?;
    st.event_posts.fetch_add(1, Ordering::SeqCst);
    if let Some(code) = *st.events_status.lock().unwrap() {
        return Err(StatusCode::from_u16(code).unwrap());
    }
    let reject = st.reject_return.lock().unwrap().clone();
    let (mut accepted, mut duplicates, mut rejected) = (vec![], vec![], vec![]);
    for e in body["events"].as_array().cloned().unwrap_or_default() {
        let id = e["event_id"].as_str().unwrap_or("").to_owned();
        if reject.as_deref().is_some_and(|r| e["return_no"] == r) {
            rejected.push(json!({"event_id": id, "reason": "unknown_merchant"}));
            continue;
        }
        st.events.lock().unwrap().push(e.clone());
        if st.seen.lock().unwrap().insert(id.clone()) {
            accepted.push(id);
        } else {
            duplicates.push(id);
        }
    }
    Ok(Json(
        json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected}),
    ))
}

async fn photo(
    State(st): State<Arc<PlatformState>>,
    UrlPath((_sid, sha)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Err(code) = gate(&st, &headers) {
        return code;
    }
    if hex::encode(Sha256::digest(&body)) != sha {
        return StatusCode::BAD_REQUEST;
    }
    match st.photos.lock().unwrap().insert(sha, body.to_vec()) {
        Some(_) => StatusCode::OK,
        None => StatusCode::CREATED,
    }
}

async fn diagnostics(
    State(st): State<Arc<PlatformState>>,
    UrlPath((_sid, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Err(code) = gate(&st, &headers) {
        return code;
    }
    match serde_json::from_slice(&body) {
        Ok(doc) => {
            st.diagnostics.lock().unwrap().push((id, doc));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn manifest(
    State(st): State<Arc<PlatformState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, StatusCode> {
    gate(&st, &headers)?;
    st.manifest_gets.fetch_add(1, Ordering::SeqCst);
    let all = st.manifest.lock().unwrap().clone();
    let from: usize = q
        .get("since")
        .and_then(|c| c.strip_prefix('c'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(from).cloned().collect();
    Ok(Json(
        json!({"returns": page, "cursor": format!("c{}", all.len())}),
    ))
}
