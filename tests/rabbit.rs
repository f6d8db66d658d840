//! The station against RabbitMQ's MQTT plugin, a clustered broker
//! (issue 22): a three-node cluster started once for this test binary,
//! each node on free ports with its own data directory, run as the
//! `rabbitmq` user. Why three nodes and not two: docs/FLEET.md.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;

use crate::fleet::{events_topic, fleet_station, last_seq, seqs_of};
use crate::platform::{Proxy, Subscriber, free_port, publish};
use crate::tls::{Ca, last_error, station};
use crate::util::wait_until;

const LONG: Duration = Duration::from_secs(90);

/// One node of the cluster.
pub struct Node {
    pub name: String,
    pub mqtt_port: u16,
    child: Mutex<Option<Child>>,
}

/// The cluster of this test binary.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// The first node's MQTT-over-TLS listener, which requires a client
    /// certificate signed by `ca_file`'s CA.
    pub tls_port: u16,
    pub ca_file: PathBuf,
    pub client: (PathBuf, PathBuf),
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster, started on first use (~20 s) and shared by the tests of
/// this binary; its nodes die with the binary.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A free port whose CLI distribution range (+10 000) is valid too.
fn dist_port() -> u16 {
    loop {
        let p = free_port();
        if p < 50_000 {
            return p;
        }
    }
}

fn as_rabbitmq(home: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "rabbitmq", "--", "env"])
        .arg(format!("HOME={}", home.display()));
    c
}

impl Cluster {
    fn start() -> Cluster {
        let base = tempfile::Builder::new()
            .prefix("yizhan-rabbitmq-")
            .tempdir()
            .expect("cluster dir")
            .keep();
        let home = base.join("home");
        std::fs::create_dir_all(&home).expect("home");
        // The nodes and the CLI find each other by this shared cookie.
        std::fs::write(
            home.join(".erlang.cookie"),
            format!("YIZHANTEST{}", std::process::id()),
        )
        .expect("cookie");
        let tls = base.join("tls");
        std::fs::create_dir_all(&tls).expect("tls dir");
        let ca = Ca::new("yizhan rabbitmq test CA");
        let ca_file = ca.write(&tls, "ca");
        let (cert, key) = ca.issue(&tls, "broker", &["127.0.0.1", "localhost"], false);
        let client = ca.issue(&tls, "kiosk-rmq-tls", &[], true);
        let tls_port = free_port();
        let tls_conf = format!(
            "mqtt.listeners.ssl.default = {tls_port}\n\
             ssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n",
            ca_file.display(),
            cert.display(),
            key.display()
        );
        let tag = format!("yz{}", std::process::id());
        let nodes: Vec<Node> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let extra = if i == 0 { tls_conf.as_str() } else { "" };
                Node::spawn(&base, &home, &format!("{tag}{n}"), extra)
            })
            .collect();
        for n in &nodes {
            n.wait_listening(&base, "to boot");
        }
        for n in &nodes[1..] {
            for args in [
                vec!["stop_app"],
                vec!["join_cluster", &nodes[0].name],
                vec!["start_app"],
            ] {
                let out = as_rabbitmq(&home)
                    .arg("/usr/lib/rabbitmq/bin/rabbitmqctl")
                    .args(["-n", &n.name])
                    .args(&args)
                    .output()
                    .expect("rabbitmqctl");
                assert!(
                    out.status.success(),
                    "rabbitmqctl {args:?} on {}: {}",
                    n.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            n.wait_listening(&base, "to listen again in the cluster");
        }
        Cluster {
            nodes,
            tls_port,
            ca_file,
            client,
        }
    }
}

impl Node {
    fn spawn(base: &Path, home: &Path, name: &str, extra_conf: &str) -> Node {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("mnesia")).expect("node dir");
        std::fs::create_dir_all(dir.join("log")).expect("node dir");
        let (amqp, mqtt, dist) = (free_port(), free_port(), dist_port());
        // Quorum queues: a station's session and the platform's
        // subscription survive the loss of one node (docs/FLEET.md).
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = {amqp}\nmqtt.listeners.tcp.default = {mqtt}\n\
                 loopback_users = none\nmqtt.durable_queue_type = quorum\n\
                 log.console = false\n{extra_conf}"
            ),
        )
        .expect("rabbitmq.conf");
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n").expect("plugins");
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(base)
            .status()
            .expect("chown");
        assert!(status.success(), "chown the cluster directory");
        let status = Command::new("chmod")
            .args(["0755"])
            .arg(base)
            .status()
            .expect("chmod");
        assert!(status.success());
        // Erlang refuses a cookie others can read.
        let status = Command::new("chmod")
            .arg("0400")
            .arg(home.join(".erlang.cookie"))
            .status()
            .expect("chmod");
        assert!(status.success());
        let full = format!("{name}@localhost");
        // The node lives in its own process group with a watchdog that
        // kills the group once this test binary is gone, however it ends.
        let script = format!(
            "{} RABBITMQ_NODENAME={full} RABBITMQ_NODE_PORT={amqp} RABBITMQ_DIST_PORT={dist} \
             RABBITMQ_MNESIA_BASE={d}/mnesia RABBITMQ_LOG_BASE={d}/log \
             RABBITMQ_CONFIG_FILE={d}/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE={d}/enabled_plugins \
             RABBITMQ_ADVANCED_CONFIG_FILE={d}/advanced.config RABBITMQ_PID_FILE={d}/pid \
             /usr/lib/rabbitmq/bin/rabbitmq-server >{d}/out.log 2>&1 &\n\
             while kill -0 {parent} 2>/dev/null; do sleep 1; done\nkill -9 -$$\n",
            format_args!("runuser -u rabbitmq -- env HOME={}", home.display()),
            d = dir.display(),
            parent = std::process::id(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rabbitmq-server (apt-get install rabbitmq-server)");
        Node {
            name: full,
            mqtt_port: mqtt,
            child: Mutex::new(Some(child)),
        }
    }

    /// Waits for the MQTT listener; a node takes ~15 s to boot on two
    /// cores, longer on a busy machine. On failure, says what its log says.
    fn wait_listening(&self, base: &Path, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", self.mqtt_port)).is_err() {
            if std::time::Instant::now() > deadline {
                let short = self.name.split('@').next().unwrap_or_default();
                let log =
                    std::fs::read_to_string(base.join(short).join("out.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "RabbitMQ node {} {what}: not listening after 120 s; its log ends:\n{}",
                    self.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt_port)
    }

    /// `kill -9` of the node and everything it started.
    pub fn kill9(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }
}

/// On one RabbitMQ node: events go up at QoS 1 and count as delivered on
/// the broker's PUBACK, commands come down, the retained status is online
/// while connected, and the last will says offline after a kill -9.
#[test]
fn rabbitmq_carries_events_commands_status_and_the_last_will() {
    let c = cluster();
    let node = &c.nodes[0];
    let sub = Subscriber::start(node.mqtt_port, &events_topic(500));
    let mut st = fleet_station(500, &[node.url()], "");
    for n in 0..5 {
        st.quick_checkin("FLEET", n);
    }
    let last = last_seq(&st);
    wait_until("every event at the platform", LONG, || {
        (seqs_of(&sub.messages(), 500) == (1..=last).collect::<HashSet<i64>>()).then_some(())
    });
    wait_until("every event marked delivered", LONG, || {
        (st.sync_view()["pending_events"] == 0).then_some(())
    });

    let command = json!({"command_id": "rmq-1", "type": "manifest.refresh", "data": {}});
    publish(
        node.mqtt_port,
        "yizhan/v1/stations/ST-F0500/commands",
        command.to_string().as_bytes(),
    );
    wait_until("the command applied", LONG, || {
        let n: i64 = st
            .db()
            .query_row(
                "SELECT COUNT(*) FROM commands WHERE command_id = 'rmq-1'",
                [],
                |r| r.get(0),
            )
            .ok()?;
        (n == 1).then_some(())
    });

    // Retained messages are kept per node in RabbitMQ 3.x: a subscriber
    // on the node the station uses gets the retained status.
    let status = Subscriber::start(node.mqtt_port, "yizhan/v1/stations/ST-F0500/status");
    status.wait_for("the retained online status", LONG, |m| {
        m["online"] == true && m["version"].is_string()
    });
    st.kill9();
    status.wait_for("the last will", LONG, |m| m["online"] == false);
}

/// Stations on two nodes of the cluster, each draining a backlog; one node
/// is killed with SIGKILL in the middle of the drain. Every station fails
/// over to a surviving node and the platform's subscriber receives every
/// event of every station, gap-free.
#[test]
fn rabbitmq_node_killed_mid_drain_loses_no_event() {
    const STATIONS: usize = 4;
    const BACKLOG: usize = 30;
    let c = cluster();
    let (victim, survivor) = (&c.nodes[1], &c.nodes[0]);
    // The platform reads from the third node; its quorum queue survives.
    let sub = Subscriber::start(c.nodes[2].mqtt_port, "yizhan/v1/stations/+/events");
    // Stations 0 and 1 prefer the victim, 2 and 3 the survivor; each
    // reaches its nodes through proxies held closed while the backlog
    // builds up.
    let mut proxies = Vec::new();
    let fleet: Vec<_> = (0..STATIONS)
        .map(|i| {
            let (first, second) = if i < 2 {
                (victim, survivor)
            } else {
                (survivor, victim)
            };
            let p1 = Proxy::start(first.mqtt_port, false);
            let p2 = Proxy::start(second.mqtt_port, false);
            let urls = [
                format!("mqtt://127.0.0.1:{}", p1.port),
                format!("mqtt://127.0.0.1:{}", p2.port),
            ];
            let st = fleet_station(
                600 + i,
                &urls,
                "reconnect_spread_ms = 500\nmax_bytes_per_s = 4000",
            );
            proxies.push((p1, p2));
            (st, urls)
        })
        .collect();
    for (i, (st, _)) in fleet.iter().enumerate() {
        for n in 0..BACKLOG {
            st.quick_checkin("FLEET", i * 1000 + n);
        }
    }
    let lasts: Vec<i64> = fleet.iter().map(|(st, _)| last_seq(st)).collect();
    for (p1, p2) in &proxies {
        p1.set_open(true);
        p2.set_open(true);
    }
    // Mid-drain: the victim's stations have delivered some, not all.
    wait_until("the drain under way on the victim", LONG, || {
        let msgs = sub.messages();
        (0..2)
            .all(|i| seqs_of(&msgs, 600 + i).len() >= 3)
            .then_some(())
    });
    let before: Vec<usize> = (0..2)
        .map(|i| seqs_of(&sub.messages(), 600 + i).len())
        .collect();
    victim.kill9();
    for (i, (st, urls)) in fleet.iter().enumerate() {
        wait_until("every backlog drained", LONG, || {
            (st.sync_view()["pending_events"] == 0).then_some(())
        });
        let want: HashSet<i64> = (1..=lasts[i]).collect();
        wait_until("every event at the platform", LONG, || {
            (seqs_of(&sub.messages(), 600 + i) == want).then_some(())
        });
        if i < 2 {
            assert!(
                (before[i] as i64) < lasts[i],
                "station {i} had drained before the kill"
            );
            assert_eq!(
                st.sync_view()["mqtt_broker"],
                urls[1].as_str(),
                "station {i} moved to the surviving node"
            );
        }
    }
}

/// Mutual TLS on the plugin's TLS listener: with the CA and a client
/// certificate the station connects and delivers; without a client
/// certificate the broker refuses it.
#[test]
fn rabbitmq_mutual_tls_delivers_and_refuses_a_station_without_a_certificate() {
    let c = cluster();
    let good = station("kiosk-rmq-tls", c.tls_port, &c.ca_file, Some(&c.client));
    good.quick_checkin("FLEET", 1);
    wait_until("delivery over mTLS", LONG, || {
        let v = good.sync_view();
        (v["mqtt_connected"] == true && v["pending_events"] == 0).then_some(())
    });
    let anonymous = station("kiosk-rmq-no-cert", c.tls_port, &c.ca_file, None);
    last_error(&anonymous);
    assert_eq!(anonymous.sync_view()["mqtt_connected"], false);
    assert_eq!(good.sync_view()["mqtt_connected"], true);
}
