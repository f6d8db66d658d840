//! Test harness: a real `yizhan` daemon process on `127.0.0.1:0` with its
//! own temporary data directory and config, driven over real HTTP.
//!
//! Every test builds its own [`TestStation`]; nothing is shared between
//! tests. Waits are on conditions with deadlines, never fixed sleeps.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reqwest::blocking::Client;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_yizhan");

/// A command running the binary under test: the one cargo built, or
/// `$YIZHAN_TEST_BIN` run through `$YIZHAN_TEST_RUNNER` (how CI runs this
/// whole suite against the aarch64 build under qemu-user, e.g.
/// `YIZHAN_TEST_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"`).
pub fn yizhan() -> Command {
    let bin = std::env::var("YIZHAN_TEST_BIN").unwrap_or_else(|_| BIN.to_owned());
    let runner = std::env::var("YIZHAN_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// How long the daemon may take to come up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The platform's signing key used in tests (its public half is trusted as
/// key id `k1` by every test station).
pub fn platform_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A running daemon and its data directory.
pub struct TestStation {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    /// Sends this run's operator token (clerk rights) with every request.
    pub client: Client,
    /// Sends no token: a customer at the kiosk.
    pub anon: Client,
    /// This run's operator token (`operator.token`, new on every start).
    pub token: String,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// Extra environment for the daemon process.
    pub env: Vec<(String, String)>,
    /// Runs the daemon with this open-file limit (soft and hard).
    pub fd_limit: Option<u32>,
    /// The data directory (`storage.data_dir`).
    data: PathBuf,
}

impl TestStation {
    /// A station on default settings (plus test-friendly ones).
    pub fn start() -> TestStation {
        TestStation::start_with("")
    }

    /// A station whose config file also holds `extra` (TOML, merged over the
    /// harness settings; sections given here must not repeat the harness's).
    pub fn start_with(extra: &str) -> TestStation {
        let mut station = TestStation::create(extra);
        station.spawn();
        station
    }

    /// Writes the config without starting the daemon.
    pub fn create(extra: &str) -> TestStation {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("yizhan.toml");
        let key = base64_key(&platform_key());
        let text = format!(
            "[station]\nclock_check = \"off\"\n[storage]\ndata_dir = {:?}\nmin_free_mb = 0\n\
             [api]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\nlevel = \"info\"\n\
             [codes.trusted_keys]\nk1 = \"{key}\"\n",
            dir.path().join("data").display().to_string(),
        );
        let text = merge_toml(&text, extra);
        let table: toml::Table = text.parse().expect("merged toml");
        let data = PathBuf::from(
            table["storage"]["data_dir"]
                .as_str()
                .expect("storage.data_dir"),
        );
        std::fs::write(&config, text).expect("write config");
        TestStation {
            dir,
            config,
            base: String::new(),
            client: client_with(None),
            anon: client_with(None),
            token: String::new(),
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            env: Vec::new(),
            fd_limit: None,
            data,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("yizhan.db")
    }

    /// Starts the daemon and waits until it logs the address it listens on.
    pub fn spawn(&mut self) {
        self.launch();
        let line = self.wait_for_log("api listening", START_DEADLINE);
        let v: Value = serde_json::from_str(&line).expect("json log line");
        self.base = format!("http://{}", v["addr"].as_str().expect("addr field"));
        // Written before the API listens.
        self.token = std::fs::read_to_string(self.data_dir().join("operator.token"))
            .expect("operator token");
        self.client = client_with(Some(&self.token));
    }

    /// Starts the daemon without waiting for anything.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.logs.lock().unwrap().clear();
        let mut cmd = yizhan();
        if let Some(n) = self.fd_limit {
            // Through a shell, so the limit holds from exec on (a kiosk's
            // `LimitNOFILE=`).
            let program = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$@\""))
                .arg("sh")
                .arg(program)
                .args(args);
        }
        let mut child = cmd
            .args(["--config", self.config.to_str().unwrap(), "run"])
            .env_remove("YIZHAN_CONFIG")
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn yizhan");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::clone(&self.logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
    }

    /// Adds a clerk through the CLI (PIN on stdin).
    pub fn add_clerk(&self, id: &str, name: &str, pin: &str) {
        use std::io::Write;
        let mut child = yizhan()
            .arg("--config")
            .arg(&self.config)
            .args(["clerk", "add", id, "--name", name])
            .env_remove("YIZHAN_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run yizhan clerk add");
        writeln!(child.stdin.take().unwrap(), "{pin}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "clerk add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Logs a clerk in; returns (status, body).
    pub fn login(&self, id: &str, pin: &str) -> (u16, Value) {
        status_json(
            self.anon
                .post(self.url("/api/v1/sessions"))
                .json(&json!({"clerk_id": id, "pin": pin}))
                .send()
                .expect("request"),
        )
    }

    /// A request with an explicit token (`None`: no Authorization header).
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .anon
            .request(method.parse().expect("method"), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        status_json(req.send().expect("request"))
    }

    /// Waits for a log line containing `needle`; panics with the log on
    /// timeout or if the process exits first.
    pub fn wait_for_log(&mut self, needle: &str, deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "yizhan exited ({status}) before {needle:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < deadline,
                "no {needle:?} within {deadline:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                if !status.success() {
                    // The caller asserts; the log says why.
                    eprintln!("yizhan exited {status} on SIGTERM:\n{}", self.log_text());
                }
                return status.success();
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                panic!("yizhan did not stop on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON; returns the status and the JSON body (Null if none).
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .expect("request");
        status_json(r)
    }

    /// POSTs raw bytes.
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .body(body)
            .send()
            .expect("request");
        status_json(r)
    }

    /// GETs a text body (e.g. `/metrics`), asserting a 200.
    pub fn get_text(&self, path: &str) -> String {
        let r = self.client.get(self.url(path)).send().expect("request");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.text().expect("text body")
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        status_json(self.client.get(self.url(path)).send().expect("request"))
    }

    /// Scans a code and returns the answer (asserting a 200).
    pub fn scan(&self, code: &str, channel: &str) -> Value {
        let (status, body) = self.post("/api/v1/scans", json!({"code": code, "channel": channel}));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Scans a code that must be accepted; returns the draft id.
    pub fn draft(&self, code: &str, channel: &str) -> String {
        let answer = self.scan(code, channel);
        answer["parcel_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not accepted: {answer}"))
            .to_owned()
    }

    pub fn photo(&self, id: &str, kind: &str, seed: u8) -> Value {
        let (status, body) = self.post_bytes(
            &format!("/api/v1/parcels/{id}/photos?kind={kind}"),
            png(48, 32, seed),
        );
        assert_eq!(status, 201, "{body}");
        body
    }

    /// scan → photo → accept; returns the receipt.
    pub fn checkin(&self, return_no: &str, waybill: &str) -> Value {
        let id = self.draft(return_no, "clerk");
        self.photo(&id, "label", return_no.len() as u8);
        let (status, body) = self.post(
            &format!("/api/v1/parcels/{id}/accept"),
            json!({"waybill_no": waybill}),
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    /// scan → accept without photos (stations with `min_photos = 0`): one
    /// `parcel.accepted` event for return `RT-{prefix}-{n:05}`, waybill
    /// `SF{n:012}`.
    pub fn quick_checkin(&self, prefix: &str, n: usize) {
        let id = self.draft(&format!("RT-{prefix}-{n:05}"), "clerk");
        let (status, body) = self.post(
            &format!("/api/v1/parcels/{id}/accept"),
            json!({"waybill_no": format!("SF{n:012}")}),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// The station's sync view (`GET /api/v1/sync`).
    pub fn sync_view(&self) -> Value {
        let (status, v) = self.get("/api/v1/sync");
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Waits until the station reports an MQTT session.
    pub fn wait_mqtt_connected(&self) {
        wait_until("an MQTT session", Duration::from_secs(60), || {
            (self.sync_view()["mqtt_connected"] == true).then_some(())
        });
    }

    /// Runs the CLI against this station's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        yizhan()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("YIZHAN_CONFIG")
            .output()
            .expect("run yizhan cli")
    }

    /// Runs the CLI with `--json` and parses its output (asserting success).
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "yizhan {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    /// Imports a manifest JSON document through the CLI.
    pub fn import_manifest(&self, manifest: Value) {
        let file = self
            .dir
            .path()
            .join(format!("manifest-{}.json", ulid::Ulid::new()));
        std::fs::write(&file, manifest.to_string()).unwrap();
        let v = self.cli_json(&["manifest", "import", file.to_str().unwrap()]);
        assert!(v["imported"].as_u64().is_some(), "{v}");
    }

    /// A read-only connection to the station's database.
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db");
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }
}

impl Drop for TestStation {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client_with(token: Option<&str>) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("client")
}

fn status_json(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A real PNG whose pixels depend on `seed` (different seeds, different
/// stored photos).
pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    use image::ImageEncoder;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([x as u8 ^ seed, y as u8, seed])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&img, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

pub fn base64_key(key: &SigningKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
}

/// A signed return code.
pub fn yzr1(payload: Value, key: &SigningKey) -> String {
    yizhan::token::encode_raw("YZR1", payload.to_string().as_bytes(), key)
}

/// A manifest document with one authorised return per number.
pub fn manifest_of(return_nos: &[&str]) -> Value {
    let returns: Vec<Value> = return_nos
        .iter()
        .map(|rn| json!({"return_no": rn, "merchant_id": "M1", "status": "authorized"}))
        .collect();
    json!({ "returns": returns })
}

/// Deep-merges the TOML `extra` over `base` (tables key by key).
fn merge_toml(base: &str, extra: &str) -> String {
    fn merge(into: &mut toml::Table, over: toml::Table) {
        for (k, v) in over {
            match (into.get_mut(&k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut table: toml::Table = base.parse().expect("harness toml");
    merge(&mut table, extra.parse().expect("test toml"));
    table.to_string()
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub fn wait_until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
