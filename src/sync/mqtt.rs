//! Events up, commands down and presence over MQTT (SPEC §6.1).
//!
//! # Sessions
//! Each connection gets a fresh `rumqttc` event loop. rumqttc keeps its
//! unacknowledged publishes in memory only and drops them when the broker
//! has no saved session, so we never rely on them: the outbox is the source
//! of truth, and each new session resends every event not yet marked
//! delivered. Duplicates are fine; loss is not.
//!
//! PUBACKs are matched to outbox rows by packet id: the event loop reports
//! `Outgoing::Publish(pkid)` for requests in the order they were made, so a
//! FIFO of what we asked to publish names the `seq` behind each pkid.
//!
//! # Presence
//! The retained status says `online:true` while a session is up, whatever
//! the order in which the broker publishes an earlier connection's last
//! will: the session subscribes to its own status topic and answers an
//! `online:false` there with its status, and publishes it once more
//! [`STATUS_AGAIN_AFTER`] after connecting (docs/PROTOCOL.md §2.2).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet,
    Publish, QoS, TlsConfiguration, Transport,
};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::drain::Selector;
use super::queue::Outgoing as Pending;
use super::{Ctx, SyncError, commands, queue, stopped, tls};
use crate::backoff::Backoff;
use crate::config::{Broker, MqttConfig};

/// How often an idle session looks at the outbox again even without a
/// signal (an operator's retry from the CLI, say).
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// After every (re)connect the presence is published once more this much
/// later: a last will of the previous connection that the broker published
/// after our first `online:true` (a takeover, a restart racing the broker's
/// detection of the dead socket) is overwritten within seconds even if the
/// broker refuses our subscription to the status topic.
const STATUS_AGAIN_AFTER: Duration = Duration::from_secs(3);

/// The topics of one station.
#[derive(Debug, Clone)]
pub struct Topics {
    pub events: String,
    pub status: String,
    pub commands: String,
}

impl Topics {
    pub fn new(station_id: &str) -> Topics {
        let base = format!("yizhan/v1/stations/{station_id}");
        Topics {
            events: format!("{base}/events"),
            status: format!("{base}/status"),
            commands: format!("{base}/commands"),
        }
    }
}

/// Connects, serves, and reconnects until `stop`.
/// Events are published only with `send_events` (`events_via` is not
/// `https`); presence and commands always go over MQTT.
///
/// # Reconnects
/// A lost connection is retried on the same broker after a random
/// `0..sync.reconnect_spread_ms`, so a fleet whose broker restarted comes
/// back spread over that window. A failed attempt moves on to the next
/// broker of `sync.mqtt.urls` after a full-jitter backoff delay. The outbox
/// is resent on every new session, so a broker that does not have the
/// session loses nothing.
pub async fn run(ctx: Ctx, cfg: MqttConfig, send_events: bool, mut stop: watch::Receiver<bool>) {
    let sync = ctx.deps.config().sync.clone();
    let mut backoff = Backoff::new(
        Duration::from_millis(sync.retry_initial_ms),
        Duration::from_secs(sync.retry_max_s),
    );
    let mut next = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let broker = &cfg.brokers[next % cfg.brokers.len()];
        ctx.state
            .update(|l| l.mqtt_broker = Some(broker.to_string()));
        let ended = match options(&ctx, &cfg, broker).await {
            Ok(opts) => session(&ctx, opts, send_events, &mut stop).await,
            Err(e) => Ended::Lost {
                error: e.to_string(),
                was_connected: false,
            },
        };
        match ended {
            Ended::Stopped => return,
            Ended::Lost {
                error,
                was_connected,
            } => {
                ctx.state.set_mqtt_connected(false, Some(error.clone()));
                ctx.state
                    .update(|l| l.mqtt_attempts_failed += u64::from(!was_connected));
                let delay = if was_connected {
                    backoff.reset();
                    Backoff::spread(Duration::from_millis(sync.reconnect_spread_ms))
                } else {
                    next = (next + 1) % cfg.brokers.len();
                    backoff.next_delay()
                };
                tracing::warn!(broker = %broker, error = %error, retry_in_ms = delay.as_millis() as u64, next = %cfg.brokers[next], "MQTT connection lost or refused; will reconnect");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stopped(&mut stop) => return,
                }
            }
        }
    }
}

enum Ended {
    Stopped,
    Lost { error: String, was_connected: bool },
}

async fn options(ctx: &Ctx, cfg: &MqttConfig, broker: &Broker) -> Result<MqttOptions, SyncError> {
    let station = &ctx.deps.config().station;
    let sync = &ctx.deps.config().sync;
    let mut opts = MqttOptions::new(station.device_id.clone(), broker.host.clone(), broker.port);
    opts.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(cfg.keep_alive_s))
        .set_inflight(sync.inflight.saturating_add(8))
        .set_manual_acks(true)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_last_will(LastWill::new(
            ctx.topics.status.clone(),
            json!({"online": false}).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| {
                    SyncError::Credentials(format!(
                        "cannot read sync.mqtt.password_file {}: {e}",
                        path.display()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => String::new(),
        };
        opts.set_credentials(user.clone(), password);
    }
    if broker.tls {
        let tls = tls::client_config(&cfg.tls_files)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(opts)
}

/// One connection, from connect to loss (or stop).
async fn session(
    ctx: &Ctx,
    opts: MqttOptions,
    send_events: bool,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let sync = ctx.deps.config().sync.clone();
    let window = usize::from(sync.inflight);
    let (client, eventloop) = AsyncClient::new(opts, window * 2 + 32);
    let (events_tx, mut events) = mpsc::channel(window * 2 + 32);
    let mut network = tokio::spawn(forward(eventloop, events_tx, sync.timeout_s));
    let ended = Session {
        ctx,
        client: &client,
        window,
        asked: VecDeque::new(),
        asked_events: 0,
        inflight: HashMap::new(),
        connected: false,
        send_events,
        status_again: None,
    }
    .serve(&mut events, stop)
    .await;
    if matches!(ended, Ended::Stopped) {
        // Give the goodbye and DISCONNECT a moment to leave.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut network).await;
    }
    network.abort();
    ended
}

/// Polls the event loop and forwards what it says; ends at the first error.
async fn forward(
    mut eventloop: EventLoop,
    out: mpsc::Sender<Result<Event, ConnectionError>>,
    connect_timeout_s: u64,
) {
    set_network_options(&mut eventloop, connect_timeout_s);
    loop {
        let next = eventloop.poll().await;
        let failed = next.is_err();
        if out.send(next).await.is_err() || failed {
            return;
        }
    }
}

/// Socket options of every connection to the broker.
fn set_network_options(eventloop: &mut EventLoop, connect_timeout_s: u64) {
    eventloop
        .network_options
        .set_connection_timeout(connect_timeout_s);
    // Nagle's algorithm holds a publish back while earlier ones are
    // unacknowledged, and the broker's delayed ACK can then hold it for
    // up to 40 ms: a window refilled a few events at a time, as PUBACKs
    // come in, stalls on that. Measured on loopback: the drain is ~20 %
    // faster without it and the broker spends less CPU per event
    // (docs/PERFORMANCE.md).
    eventloop.network_options.set_tcp_nodelay(true);
}

/// An outbox read under way; it owns the selector until it is done.
type Fetch<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (Selector, Result<super::drain::Pick, crate::db::DbError>)>
            + Send
            + 'a,
    >,
>;

struct Session<'a> {
    ctx: &'a Ctx,
    client: &'a AsyncClient,
    window: usize,
    /// What we asked to publish, in order: `Some(seq)` for events, `None`
    /// for presence messages.
    asked: VecDeque<Option<i64>>,
    /// How many of `asked` are events.
    asked_events: usize,
    /// Packet id → seq of events awaiting their PUBACK.
    inflight: HashMap<u16, i64>,
    connected: bool,
    /// Whether this session carries events (not with `events_via = https`).
    send_events: bool,
    /// When to publish the presence once more after connecting
    /// ([`STATUS_AGAIN_AFTER`]).
    status_again: Option<Instant>,
}

/// The outbox side of a session: events read ahead of the window, the
/// read under way, and whether more may be waiting.
struct Feed<'a> {
    /// The cursor over the outbox; lent to `fetch` while a read runs.
    selector: Option<Selector>,
    /// Something was committed (or the session began) since the last read.
    more: bool,
    /// The rate cap's next allowed read.
    wait_until: Option<Instant>,
    /// Events read ahead of the window: one outbox read feeds many
    /// publishes instead of one read per PUBACK. The next read starts
    /// while half of the last one is still to be published, so the
    /// window never stands empty waiting for SQLite.
    ahead: VecDeque<Pending>,
    read_ahead: usize,
    fetch: Option<Fetch<'a>>,
}

impl<'a> Feed<'a> {
    fn new(window: usize, max_bytes_per_s: u64) -> Feed<'a> {
        Feed {
            selector: Some(Selector::new(0, max_bytes_per_s)),
            more: false,
            wait_until: None,
            ahead: VecDeque::new(),
            read_ahead: (window * 8).max(256),
            fetch: None,
        }
    }

    /// Starts the next outbox read if one is due and allowed.
    fn start_read(&mut self, ctx: &'a Ctx, may_send: bool) {
        let rate_ok = self.wait_until.is_none_or(|t| t <= Instant::now());
        if may_send
            && self.more
            && rate_ok
            && self.ahead.len() < self.read_ahead / 2
            && let Some(mut sel) = self.selector.take()
        {
            self.wait_until = None;
            // Whatever is committed from now on sets `more` again.
            self.more = false;
            let n = self.read_ahead;
            self.fetch = Some(Box::pin(async move {
                let pick = sel.next(ctx, n).await;
                (sel, pick)
            }));
        }
    }

    /// A read finished: its events join the queue, its cursor comes back.
    fn read_done(&mut self, sel: Selector, pick: Result<super::drain::Pick, crate::db::DbError>) {
        self.fetch = None;
        self.selector = Some(sel);
        match pick {
            Ok(pick) => {
                self.more |= pick.more;
                self.wait_until = pick.wait_until.map(Instant::from_std);
                self.ahead.extend(pick.events);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; will retry");
            }
        }
    }

    /// The session (re)connected: a read begun before is dropped with its
    /// cursors, and the new selector starts from the head.
    fn restart(&mut self) {
        self.fetch = None;
        self.ahead.clear();
        self.more = true;
    }
}

impl Session<'_> {
    async fn serve(
        mut self,
        events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let ctx = self.ctx;
        let sync = ctx.deps.config().sync.clone();
        let mut committed = ctx.deps.watch_events();
        let mut feed = Feed::new(self.window, sync.max_bytes_per_s);
        let mut status_tick = tokio::time::interval(Duration::from_secs(sync.status_interval_s));
        status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rescan = tokio::time::interval(RESCAN_EVERY);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Err(err) = self.fill_window(&mut feed.ahead) {
                return self.lost(err);
            }
            feed.start_read(ctx, self.connected && self.send_events);
            let wait_until = feed.wait_until;
            let rate_wait = async {
                match wait_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                (sel, pick) = async {
                    match feed.fetch.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if feed.fetch.is_some() => feed.read_done(sel, pick),
                ev = events.recv() => match ev {
                    None => return self.lost("the MQTT event loop ended".into()),
                    Some(Err(e)) => return self.lost(e.to_string()),
                    Some(Ok(ev)) => {
                        if let Err(e) = self.handle_all(ev, events, &mut feed).await {
                            return self.lost(e);
                        }
                    }
                },
                _ = committed.changed() => feed.more = true,
                _ = rescan.tick() => {
                    if self.asked.is_empty() && self.inflight.is_empty() && feed.ahead.is_empty()
                        && let Some(sel) = feed.selector.as_mut() {
                            sel.rewind();
                        }
                    feed.more = true;
                }
                () = async {
                    match self.status_again {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                }, if self.connected && self.status_again.is_some() => {
                    self.status_again = None;
                    if let Err(e) = self.publish_status(true).await {
                        return self.lost(e);
                    }
                }
                _ = status_tick.tick(), if self.connected => {
                    if let Err(e) = self.publish_status(true).await {
                        return self.lost(e);
                    }
                }
                () = rate_wait => feed.wait_until = None,
                () = stopped(stop) => return self.goodbye(),
            }
        }
    }

    /// Publishes read-ahead events while the window has room.
    fn fill_window(&mut self, ahead: &mut VecDeque<Pending>) -> Result<(), String> {
        if !self.connected {
            return Ok(());
        }
        let ctx = self.ctx;
        while self.events_in_window() < self.window {
            let Some(e) = ahead.pop_front() else { break };
            self.publish(Some(e.seq), &ctx.topics.events, e.body, false)?;
        }
        Ok(())
    }

    /// Handles `first` and every event already waiting behind it, in one go.
    async fn handle_all(
        &mut self,
        first: Event,
        events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
        feed: &mut Feed<'_>,
    ) -> Result<(), String> {
        let mut next = Some(first);
        while let Some(ev) = next {
            if let Some(connected_now) = self.handle(ev, &mut feed.selector).await {
                connected_now?;
                feed.restart();
            }
            next = match events.try_recv() {
                Ok(Ok(ev)) => Some(ev),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => None,
            };
        }
        Ok(())
    }

    /// A clean stop: offline presence (retained), DISCONNECT.
    fn goodbye(&self) -> Ended {
        if self.connected {
            let _ = self.client.try_publish(
                self.ctx.topics.status.clone(),
                QoS::AtLeastOnce,
                true,
                json!({"online": false}).to_string(),
            );
        }
        let _ = self.client.try_disconnect();
        self.ctx.state.set_mqtt_connected(false, None);
        Ended::Stopped
    }

    /// Handles one event-loop event. `Some(Ok(()))` when the session has
    /// just been established.
    async fn handle(
        &mut self,
        ev: Event,
        selector: &mut Option<Selector>,
    ) -> Option<Result<(), String>> {
        let ctx = self.ctx;
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                ctx.state.set_mqtt_connected(true, None);
                ctx.state.update(|l| l.mqtt_sessions += 1);
                tracing::info!(session_present = ack.session_present, "MQTT connected");
                // Everything committed before now is backlog; resend all
                // that is not marked delivered.
                let mark = ctx.read(queue::last_seq).await.unwrap_or(0);
                *selector = Some(Selector::new(mark, ctx.deps.config().sync.max_bytes_per_s));
                // Our own status topic too: a last will the broker publishes
                // for an older connection of ours comes back to us, and is
                // answered at once (see `own_status`).
                for topic in [&ctx.topics.commands, &ctx.topics.status] {
                    if let Err(e) = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        return Some(Err(e.to_string()));
                    }
                }
                self.status_again = Some(Instant::now() + STATUS_AGAIN_AFTER);
                Some(self.publish_status(true).await)
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(seq)) = self.asked.pop_front() {
                    self.asked_events -= 1;
                    self.inflight.insert(pkid, seq);
                }
                None
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(seq) = self.inflight.remove(&ack.pkid) {
                    let _ = ctx.acks.send(seq);
                }
                None
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == ctx.topics.status => {
                Some(self.own_status(p).await).filter(Result::is_err)
            }
            Event::Incoming(Packet::Publish(p)) => {
                self.command(p).await;
                None
            }
            _ => None,
        }
    }

    /// Applies a command, then acknowledges it: a command is acked only
    /// once its effect is committed (or it was found malformed).
    async fn command(&mut self, p: Publish) {
        let ctx = self.ctx;
        if p.topic != ctx.topics.commands {
            tracing::warn!(topic = %p.topic, "message on an unexpected topic; ignored");
        } else {
            let (deps, payload) = (ctx.deps.clone(), p.payload.clone());
            let applied = ctx
                .on_main(async move { commands::apply(&deps, &payload).await })
                .await
                .unwrap_or_else(|e| Err(commands::CommandError::Db(e)));
            match applied {
                Ok((applied, then)) => {
                    tracing::info!(outcome = ?applied, "platform command");
                    ctx.state.update(|l| l.commands_applied += 1);
                    match then {
                        commands::Then::Nothing => {}
                        commands::Then::RefreshManifest => ctx.state.request_manifest_refresh(),
                        commands::Then::UploadDiagnostics(id) => {
                            tokio::spawn(super::diagnostics::upload(ctx.clone(), id));
                        }
                    }
                }
                Err(commands::CommandError::Malformed(m)) => {
                    tracing::warn!(problem = %m, bytes = p.payload.len(), "malformed platform command skipped");
                    ctx.state.update(|l| l.commands_malformed += 1);
                }
                Err(e) => {
                    // Not acked: the broker delivers it again next session.
                    tracing::error!(error = %e, "could not apply a platform command; it will be redelivered");
                    return;
                }
            }
        }
        if let Err(e) = self.client.try_ack(&p) {
            tracing::warn!(error = %e, "could not acknowledge a command");
        }
    }

    /// A message on our own status topic. While this session is up the
    /// station is online, so an `online:false` there is a last will of an
    /// earlier connection (or a stale retained goodbye) and is corrected at
    /// once; our own `online:true` coming back is ignored.
    async fn own_status(&mut self, p: Publish) -> Result<(), String> {
        if let Err(e) = self.client.try_ack(&p) {
            tracing::warn!(error = %e, "could not acknowledge a status message");
        }
        let online = serde_json::from_slice::<serde_json::Value>(&p.payload)
            .ok()
            .and_then(|v| v.get("online").and_then(serde_json::Value::as_bool));
        if online == Some(false) && self.connected {
            tracing::info!(
                retained = p.retain,
                "an offline status for this station while connected (an earlier connection's last will); publishing online again"
            );
            self.ctx.state.update(|l| l.status_corrections += 1);
            return self.publish_status(true).await;
        }
        Ok(())
    }

    fn publish(
        &mut self,
        seq: Option<i64>,
        topic: &str,
        payload: String,
        retain: bool,
    ) -> Result<(), String> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| e.to_string())?;
        self.asked.push_back(seq);
        self.asked_events += usize::from(seq.is_some());
        Ok(())
    }

    /// Events published and not yet acknowledged.
    fn events_in_window(&self) -> usize {
        self.asked_events + self.inflight.len()
    }

    async fn publish_status(&mut self, online: bool) -> Result<(), String> {
        let ctx = self.ctx;
        let body = super::view::presence(ctx, online).await;
        let topic = ctx.topics.status.clone();
        self.publish(None, &topic, body, true)
    }

    fn lost(&self, error: String) -> Ended {
        Ended::Lost {
            error,
            was_connected: self.connected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The connection to the broker has Nagle's algorithm off.
    #[tokio::test]
    async fn broker_connections_send_without_nagle_delay() {
        let broker = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let addr = broker.local_addr().expect("address");
        let opts = MqttOptions::new("nodelay-test", "127.0.0.1", addr.port());
        let (_client, mut eventloop) = AsyncClient::new(opts, 8);
        set_network_options(&mut eventloop, 5);
        let server = std::thread::spawn(move || {
            let (mut conn, _) = broker.accept().expect("accept");
            let mut connect = [0u8; 64];
            let _ = conn.read(&mut connect).expect("CONNECT");
            conn.write_all(&[0x20, 0x02, 0x00, 0x00]).expect("CONNACK");
            conn
        });
        let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("connects in time")
            .expect("connects");
        assert!(matches!(first, Event::Incoming(Packet::ConnAck(_))));
        let _conn = server.join().expect("server");

        // Find the client's socket among this process's descriptors by its
        // peer (other tests may open sockets at the same time).
        let mut checked = 0;
        for entry in std::fs::read_dir("/proc/self/fd").expect("fd list") {
            let Ok(fd) = entry
                .expect("fd")
                .file_name()
                .to_string_lossy()
                .parse::<i32>()
            else {
                continue;
            };
            // SAFETY: the descriptor is only borrowed for two getsockopt
            // calls; if it was closed or reused meanwhile they fail or name
            // another peer, and it is skipped.
            #[allow(unsafe_code)]
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let Ok(Some(peer)) = rustix::net::getpeername(fd) else {
                continue;
            };
            if std::net::SocketAddr::try_from(peer).ok() == Some(addr) {
                assert!(rustix::net::sockopt::tcp_nodelay(fd).expect("getsockopt"));
                checked += 1;
            }
        }
        assert_eq!(checked, 1, "the client's socket was not found");
    }
}
