//! Draining a backlog to a real, local Mosquitto, beside a baseline run in
//! the same process against the same broker:
//!
//! 1. Baseline: a bare rumqttc loop (its default socket options) publishing
//!    the very same envelope payloads at QoS 1 with the same in-flight
//!    window, counting PUBACKs; run just before the drain and again just
//!    after it, and the drain compared with the mean of the two.
//! 2. yizhan: a station with that backlog in its outbox, its sync task
//!    started, timed until every event is marked delivered in SQLite.
//! 3. Check-in commits per second while the drain runs, beside the same
//!    measure on the idle station just before the drain (and, for
//!    comparison, just after it).
//!
//! `cargo bench --bench sync` (`-- --quick` for a smoke run). Needs
//! `mosquitto` on the PATH or in /usr/sbin. Figures: docs/PERFORMANCE.md.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use yizhan::config::Config;
use yizhan::db::{DbError, Durability};
use yizhan::outbox::{self, Event};
use yizhan::parcel::{Channel, ParcelId};
use yizhan::station::Station;

const WINDOW: u16 = 64;

/// One round's rates, per second, and CPU costs, in µs per event.
struct Row {
    /// Bare rumqttc, mean of the runs before and after the drain.
    baseline: f64,
    drain: f64,
    /// Check-ins on the idle station before the drain.
    idle: f64,
    during: f64,
    /// Check-ins on the idle station after the drain (for comparison).
    idle_after: f64,
    /// The bare loop's process (its only work) and the broker, while the
    /// baseline runs.
    baseline_cpu: (f64, f64),
    /// The station's sync threads and the broker, during the drain.
    drain_cpu: (f64, f64),
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (events, rounds, checkins) = if quick {
        (5_000, 1, 50)
    } else {
        (100_000, 7, 1000)
    };
    let base: std::path::PathBuf = std::env::var_os("YIZHAN_BENCH_DIR")
        .map_or_else(|| env!("CARGO_TARGET_TMPDIR").into(), Into::into);
    let broker = Mosquitto::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "yizhan sync benchmark: {events} events, window {WINDOW}, mosquitto on 127.0.0.1:{}, {} cores",
        broker.port,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir_in(&base).expect("bench dir");
        let station = open_station(dir.path(), broker.port);
        let payloads = populate(&station, events);
        let cpu = Cpu::now(&broker);
        let before = rt.block_on(bare_rumqttc(broker.port, &payloads));
        let baseline_cpu = cpu.per_event(&broker, events, |_| true);
        let idle_before = checkin_rate(&rt, &station, round * 3, checkins);
        let cpu = Cpu::now(&broker);
        let start = Instant::now();
        let sync = {
            let _guard = rt.enter();
            yizhan::sync::start(&yizhan::daemon::sync_deps(&station)).expect("sync")
        };
        let during = checkin_rate(&rt, &station, round * 3 + 1, checkins);
        let pending_after_checkins = pending(&station);
        let total = events + checkins * 2;
        // Polled cheaply (one index probe) so that watching the drain
        // does not slow it down.
        while !drained(&station) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let drain = total as f64 / start.elapsed().as_secs_f64();
        let drain_cpu = cpu.per_event(&broker, total, |t| t.starts_with("yizhan-sync"));
        rt.block_on(sync.stop());
        let after = rt.block_on(bare_rumqttc(broker.port, &payloads));
        // The baseline drifts by tens of per cent within a minute on this
        // VM: the drain is compared with the mean of a run just before it
        // and one just after.
        let baseline = (before + after) / 2.0;
        // Check-ins after the drain, for comparison only: they commit into
        // a WAL file that is already allocated, while the idle and
        // during-drain series both start right after the WAL was truncated
        // and grow it (every commit extends the file: a costlier fsync).
        let idle_after = checkin_rate(&rt, &station, round * 3 + 2, checkins);
        println!(
            "round {round}: baseline {baseline:.0}/s (before {before:.0}, after {after:.0})  yizhan drain {drain:.0}/s ({:.0} %)  check-ins idle {idle_before:.0}/s, during drain {during:.0}/s ({:.0} %, {pending_after_checkins} still pending when they finished), idle after the drain {idle_after:.0}/s",
            100.0 * drain / baseline,
            100.0 * during / idle_before
        );
        println!(
            "  CPU per event: bare loop {:.1} µs + broker {:.1} µs (baseline before the drain); sync threads {:.1} µs + broker {:.1} µs (drain)",
            baseline_cpu.0, baseline_cpu.1, drain_cpu.0, drain_cpu.1
        );
        rows.push(Row {
            baseline,
            drain,
            idle: idle_before,
            during,
            idle_after,
            baseline_cpu,
            drain_cpu,
        });
    }
    let med = |f: &dyn Fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("| measure | median of {rounds} rounds |\n|---|---|");
    println!(
        "| baseline: bare rumqttc QoS 1 publish loop, same payloads, window {WINDOW} | {:.0} events/s |",
        med(&|r| r.baseline)
    );
    println!(
        "| yizhan: outbox drain until every event is marked delivered in SQLite | {:.0} events/s ({:.0} % of baseline, per-round ratio) |",
        med(&|r| r.drain),
        100.0 * med(&|r| r.drain / r.baseline)
    );
    println!(
        "| check-in commits, idle station | {:.0}/s |",
        med(&|r| r.idle)
    );
    println!(
        "| check-in commits during the drain | {:.0}/s ({:.0} % of idle, per-round ratio) |",
        med(&|r| r.during),
        100.0 * med(&|r| r.during / r.idle)
    );
    println!(
        "| CPU per event, bare loop / station's sync threads | {:.1} / {:.1} µs |",
        med(&|r| r.baseline_cpu.0),
        med(&|r| r.drain_cpu.0)
    );
    println!(
        "| CPU per event, broker during the baseline / the drain | {:.1} / {:.1} µs |",
        med(&|r| r.baseline_cpu.1),
        med(&|r| r.drain_cpu.1)
    );
    println!(
        "| check-in commits after the drain (WAL already allocated; for comparison) | {:.0}/s (during the drain: {:.0} % of it) |",
        med(&|r| r.idle_after),
        100.0 * med(&|r| r.during / r.idle_after)
    );
}

fn open_station(dir: &std::path::Path, port: u16) -> Station {
    let env = [
        ("YIZHAN_STORAGE__DATA_DIR", dir.display().to_string()),
        ("YIZHAN_STORAGE__MIN_FREE_MB", "0".to_owned()),
        ("YIZHAN_STATION__CLOCK_CHECK", "off".to_owned()),
        ("YIZHAN_STATION__MIN_PHOTOS", "0".to_owned()),
        ("YIZHAN_SYNC__EVENTS_VIA", "mqtt".to_owned()),
        ("YIZHAN_SYNC__INFLIGHT", WINDOW.to_string()),
        ("YIZHAN_SYNC__MQTT__URL", format!("mqtt://127.0.0.1:{port}")),
        (
            "YIZHAN_STATION__DEVICE_ID",
            format!("bench-{}", ulid::Ulid::new()),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    Station::open(Config::load_with_env(None, env).expect("config")).expect("station")
}

/// Commits `n` realistic `parcel.accepted` events; returns their bodies.
fn populate(station: &Station, n: usize) -> Vec<String> {
    let source = station.events().clone();
    for chunk in 0..n.div_ceil(10_000) {
        let count = (n - chunk * 10_000).min(10_000);
        station
            .db()
            .write_blocking(Durability::Relaxed, |tx| -> Result<(), DbError> {
                for i in 0..count {
                    let k = chunk * 10_000 + i;
                    let event: Event = serde_json::from_value(json!({
                        "type": "parcel.accepted",
                        "data": {
                            "waybill_no": format!("SF{k:013}"), "carrier": "SF", "channel": "clerk",
                            "condition": "intact", "provisional": false,
                            "receipt_id": ulid::Ulid::new().to_string(),
                            "photos": [{"sha256": format!("{k:064x}"), "bytes": 48213,
                                        "width": 1600, "height": 1200, "kind": "label"}],
                        },
                    }))
                    .expect("a parcel.accepted event");
                    outbox::append(
                        tx,
                        &source,
                        &event,
                        &ParcelId::new(),
                        &format!("RT2026{k:09}"),
                    )?;
                }
                Ok(())
            })
            .expect("populate");
    }
    station.db().checkpoint().expect("checkpoint");
    station
        .db()
        .read_blocking(|c| -> Result<Vec<String>, DbError> {
            let mut s = c.prepare("SELECT body FROM event_bodies ORDER BY seq")?;
            let rows = s.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .expect("bodies")
}

fn pending(station: &Station) -> i64 {
    station
        .db()
        .read_blocking(outbox::backlog)
        .expect("backlog")
        .pending_events
}

/// Whether every event is marked delivered.
fn drained(station: &Station) -> bool {
    station
        .db()
        .read_blocking(|c| -> Result<bool, DbError> {
            Ok(
                !c.query_row("SELECT EXISTS (SELECT 1 FROM outbox_pending)", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .expect("pending")
}

/// Publishes every payload at QoS 1 with `WINDOW` in flight; events/s
/// until the last PUBACK.
async fn bare_rumqttc(port: u16, payloads: &[String]) -> f64 {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(format!("baseline-{}", ulid::Ulid::new()), "127.0.0.1", port);
    opts.set_inflight(WINDOW).set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(WINDOW) * 2);
    let n = payloads.len();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("baseline connection failed: {e}"),
            }
        }
        eventloop
    });
    let start = Instant::now();
    for p in payloads {
        client
            .publish(
                "yizhan/v1/stations/BASELINE/events",
                QoS::AtLeastOnce,
                false,
                p.clone(),
            )
            .await
            .expect("publish");
    }
    let _eventloop = acks.await.expect("acks");
    n as f64 / start.elapsed().as_secs_f64()
}

/// In-process check-ins (scan + accept, fsync'd), one at a time.
fn checkin_rate(rt: &tokio::runtime::Runtime, station: &Station, series: usize, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let code = format!("RT-B{series}-{i:07}").into_bytes();
        let answer = rt
            .block_on(station.scan(code, Channel::Clerk))
            .expect("scan");
        let id = answer.parcel_id.expect("accepted");
        let input = serde_json::from_value(json!({"waybill_no": format!("SF{series:04}{i:09}")}))
            .expect("input");
        rt.block_on(station.accept(&id, input)).expect("accept");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// CPU time (user + system) used so far by this process's threads, by
/// name, and by the broker; read from `/proc` (Linux).
struct Cpu {
    threads: Vec<(String, f64)>,
    broker: f64,
}

impl Cpu {
    fn now(broker: &Mosquitto) -> Cpu {
        Cpu {
            threads: threads_cpu(std::process::id()),
            broker: threads_cpu(broker.child.id()).iter().map(|t| t.1).sum(),
        }
    }

    /// µs per event since `self`: of this process's threads whose name
    /// `counts`, and of the broker.
    fn per_event(
        &self,
        broker: &Mosquitto,
        events: usize,
        counts: impl Fn(&str) -> bool,
    ) -> (f64, f64) {
        let sum = |threads: &[(String, f64)]| -> f64 {
            threads.iter().filter(|t| counts(&t.0)).map(|t| t.1).sum()
        };
        let now = Cpu::now(broker);
        let per = |secs: f64| secs * 1e6 / events as f64;
        (
            per(sum(&now.threads) - sum(&self.threads)),
            per(now.broker - self.broker),
        )
    }
}

/// (thread name, CPU seconds) of every live thread of `pid`. A thread that
/// ended in between takes its time with it; the threads measured here live
/// through each measure. Needs Linux's `/proc`: without it the benchmark
/// stops rather than print CPU figures of zero.
#[allow(unsafe_code)]
fn threads_cpu(pid: u32) -> Vec<(String, f64)> {
    // SAFETY: sysconf only reads a constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {dir} for CPU times (Linux /proc): {e}"));
    tasks
        .flatten()
        .filter_map(|t| {
            // Only a thread that has just ended has no stat to read.
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            Some(thread_cpu(&stat, tick))
        })
        .collect()
}

/// A `/proc/…/stat` line: (comm, utime + stime in seconds).
fn thread_cpu(stat: &str, tick: f64) -> (String, f64) {
    // pid (comm) state ... utime stime: fields 14 and 15; comm may hold
    // spaces and parentheses, so split after its last ')'.
    let parsed = (|| {
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((name, (utime + stime) / tick))
    })();
    parsed.unwrap_or_else(|| panic!("unexpected /proc stat line: {stat:?}"))
}

struct Mosquitto {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let dir = tempfile::tempdir().expect("dir");
        let conf = dir.path().join("m.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nmax_queued_messages 0\n"),
        )
        .expect("conf");
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt-get install mosquitto)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Mosquitto {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
