//! Stages 2 and 3: the raw, serde-shaped configuration and its validation
//! into [`Config`], collecting every problem with its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::hardware::RawHardware;
use super::layer::DEFAULT_TOML;
use super::{
    ApiConfig, Broker, CodesConfig, Config, EventsVia, HttpsConfig, LogConfig, LogFormat,
    MqttConfig, StationConfig, StorageConfig, SyncConfig, TlsFiles,
};
use crate::carrier::{Carrier, Carriers};
use crate::clock::ClockCheck;
use crate::code::{OfflinePolicy, TrustedKeys};
use crate::token;

const SECTIONS: [&str; 8] = [
    "station", "storage", "api", "codes", "carriers", "sync", "log", "hardware",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    id: String,
    device_id: String,
    name: String,
    pickup_sla_h: i64,
    min_photos: i64,
    clock_check: String,
    max_self_drafts: i64,
    waybill_low_water: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    data_dir: PathBuf,
    max_photo_bytes: i64,
    photo_max_px: i64,
    min_free_mb: i64,
    event_retention_days: i64,
    photo_retention_days: i64,
    photo_workers: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: String,
    session_idle_min: i64,
    kiosk_idle_s: i64,
    header_timeout_s: i64,
    body_timeout_s: i64,
    idle_timeout_s: i64,
    max_connections: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCodes {
    offline_policy: String,
    #[serde(default)]
    trusted_keys: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCarrier {
    code: String,
    name: String,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    events_via: String,
    status_interval_s: i64,
    manifest_interval_s: i64,
    max_bytes_per_s: i64,
    inflight: i64,
    batch_size: i64,
    retry_initial_ms: i64,
    retry_max_s: i64,
    reconnect_spread_ms: i64,
    timeout_s: i64,
    mqtt: RawMqtt,
    https: RawHttps,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: String,
    urls: Vec<String>,
    username: String,
    password_file: String,
    keep_alive_s: i64,
    ca_file: String,
    client_cert_file: String,
    client_key_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    base_url: String,
    token_file: String,
    ca_file: String,
    client_cert_file: String,
    client_key_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
    level: String,
}

/// The configuration as written, before its values are checked.
pub(super) struct Raw {
    station: RawStation,
    storage: RawStorage,
    api: RawApi,
    codes: RawCodes,
    carriers: Vec<RawCarrier>,
    sync: RawSync,
    log: RawLog,
    hardware: RawHardware,
}

impl Raw {
    /// Deserialises each section on its own. A key of the wrong type is
    /// replaced by its default and an unknown key is dropped, each with a
    /// problem, so that the values can still be validated and every
    /// problem is reported at once. `None` when a section cannot be read
    /// even so.
    pub(super) fn from_table_patched(table: &mut Table) -> (Option<Raw>, Vec<String>) {
        let mut problems: Vec<String> = table
            .keys()
            .filter(|k| !SECTIONS.contains(&k.as_str()))
            .map(|k| {
                format!(
                    "[{k}]: unknown section; expected one of {}",
                    SECTIONS.join(", ")
                )
            })
            .collect();
        let defaults: Table = DEFAULT_TOML.parse().unwrap_or_default();
        let mut take = |name: &'static str| {
            let value = table.remove(name).unwrap_or(Value::Table(Table::new()));
            (name, value, defaults.get(name))
        };
        let station = section::<RawStation>(take("station"), &mut problems);
        let storage = section::<RawStorage>(take("storage"), &mut problems);
        let api = section::<RawApi>(take("api"), &mut problems);
        let codes = section::<RawCodes>(take("codes"), &mut problems);
        let carriers = section::<Vec<RawCarrier>>(take("carriers"), &mut problems);
        let sync = section::<RawSync>(take("sync"), &mut problems);
        let log = section::<RawLog>(take("log"), &mut problems);
        let hardware = section::<RawHardware>(take("hardware"), &mut problems);
        let raw = match (station, storage, api, codes, carriers, sync, log, hardware) {
            (
                Some(station),
                Some(storage),
                Some(api),
                Some(codes),
                Some(carriers),
                Some(sync),
                Some(log),
                Some(hardware),
            ) => Some(Raw {
                station,
                storage,
                api,
                codes,
                carriers,
                sync,
                log,
                hardware,
            }),
            _ => None,
        };
        (raw, problems)
    }

    /// Checks every value; all problems are returned together.
    pub(super) fn validate(self) -> Result<Config, Vec<String>> {
        let mut p = Problems(Vec::new());
        let station = station(&mut p, self.station);
        let storage = storage(&mut p, self.storage);
        let api = api(&mut p, self.api);
        let codes = codes(&mut p, self.codes);
        let carriers = carriers(&mut p, self.carriers);
        let sync = sync(&mut p, self.sync);
        let hardware = self.hardware.validate(&mut p);
        let log = log(&mut p, self.log);
        if p.0.is_empty() {
            Ok(Config {
                station,
                storage,
                api,
                codes,
                carriers,
                sync,
                log,
                hardware,
            })
        } else {
            Err(p.0)
        }
    }
}

/// Reads one section. A wrong type or an unknown key is a problem in the
/// `key = value: expected …` form; the key then takes its default (or is
/// dropped) and the section is read again, so every such key is named.
fn section<T: DeserializeOwned>(
    (name, mut value, defaults): (&str, Value, Option<&Value>),
    problems: &mut Vec<String>,
) -> Option<T> {
    // Each round fixes one key; a section has far fewer than this.
    for _ in 0..100 {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut path: Vec<Step> = err.path().iter().filter_map(Step::of).collect();
        let message = err.into_inner().to_string();
        // toml adds "\nin `key`"; the key is named in front instead.
        let message = message.lines().next().unwrap_or_default().trim();
        if let Some(field) = between(message, "unknown field `", "`") {
            if !matches!(path.last(), Some(Step::Key(k)) if k == field) {
                path.push(Step::Key(field.to_owned()));
            }
            let key = key_name(name, &path);
            let shown = lookup(&value, &path).map_or_else(String::new, |v| format!(" = {v}"));
            let expected = between(message, "expected ", "\u{0}")
                .or_else(|| message.split_once("expected ").map(|(_, e)| e))
                .unwrap_or("no other key here");
            problems.push(format!("{key}{shown}: unknown key; expected {expected}"));
            if !remove(&mut value, &path) {
                return None;
            }
        } else if let Some(field) = between(message, "missing field `", "`") {
            if !matches!(path.last(), Some(Step::Key(k)) if k == field) {
                path.push(Step::Key(field.to_owned()));
            }
            problems.push(format!(
                "{}: missing; this key is required here",
                key_name(name, &path)
            ));
            return None;
        } else if let Some(found) = lookup(&value, &path).cloned() {
            let key = key_name(name, &path);
            problems.push(format!(
                "{key} = {found}: expected {}",
                expectation(message)
            ));
            let default = defaults.and_then(|d| lookup(d, &path)).cloned();
            let patched = match default {
                Some(d) => replace(&mut value, &path, d),
                None => remove(&mut value, &path),
            };
            if !patched {
                return None;
            }
        } else {
            problems.push(format!("[{name}]: {message}"));
            return None;
        }
    }
    None
}

/// One step of a key's path inside a section.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    fn of(segment: &serde_path_to_error::Segment) -> Option<Step> {
        match segment {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        }
    }
}

/// `station.pickup_sla_h`, `carriers[1].code`, `hardware.scanners[0].baud`.
fn key_name(section: &str, path: &[Step]) -> String {
    let mut key = section.to_owned();
    for step in path {
        match step {
            Step::Key(k) => {
                key.push('.');
                key.push_str(k);
            }
            Step::Index(i) => key.push_str(&format!("[{i}]")),
        }
    }
    key
}

fn lookup<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.as_table()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

/// The table or array holding the last step of `path`, and that step.
fn parent_mut<'v>(value: &'v mut Value, path: &[Step]) -> Option<(&'v mut Value, Step)> {
    let (last, parents) = path.split_last()?;
    let parent = parents.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.as_table_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })?;
    Some((parent, last.clone()))
}

fn remove(value: &mut Value, path: &[Step]) -> bool {
    match parent_mut(value, path) {
        Some((Value::Table(t), Step::Key(k))) => t.remove(&k).is_some(),
        _ => false,
    }
}

fn replace(value: &mut Value, path: &[Step], with: Value) -> bool {
    match parent_mut(value, path) {
        Some((Value::Table(t), Step::Key(k))) => t.insert(k, with).is_some(),
        Some((Value::Array(a), Step::Index(i))) => a.get_mut(i).map(|slot| *slot = with).is_some(),
        _ => false,
    }
}

/// The text between `start` and the next `end` (or the end of `text`).
fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(rest.find(end).map_or(rest, |i| &rest[..i]))
}

/// serde's "expected i64" in the words of the rest of the configuration's
/// problems.
fn expectation(message: &str) -> String {
    let expected = message
        .rsplit_once("expected ")
        .map_or(message, |(_, e)| e)
        .trim();
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number".to_owned()
        }
        "a boolean" => "true or false".to_owned(),
        "a string" => "text in quotes".to_owned(),
        "a sequence" => "a list [ … ]".to_owned(),
        "a map" | "struct" => "a table".to_owned(),
        other => other.to_owned(),
    }
}

fn trusted_keys(p: &mut Problems, keys: BTreeMap<String, String>) -> TrustedKeys {
    let mut out = TrustedKeys::default();
    for (kid, b64) in keys {
        match token::parse_public_key(&b64) {
            Ok(key) => {
                out.0.insert(kid, key);
            }
            Err(e) => p.push(format!("codes.trusted_keys.{kid} = {b64:?}: expected base64 of a 32-byte Ed25519 public key ({e})")),
        }
    }
    out
}

fn carriers(p: &mut Problems, raw: Vec<RawCarrier>) -> Carriers {
    let mut list = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        if c.code.trim().is_empty() {
            p.push(format!(
                "carriers[{i}].code = \"\": expected a short carrier code such as \"SF\""
            ));
        }
        if list.iter().any(|known: &Carrier| known.code == c.code) {
            p.push(format!(
                "carriers[{i}].code = {:?}: expected each carrier code once",
                c.code
            ));
        }
        match regex::Regex::new(&c.pattern) {
            Ok(pattern) => list.push(Carrier {
                code: c.code,
                name: c.name,
                pattern,
            }),
            Err(e) => p.push(format!(
                "carriers[{i}].pattern = {:?}: expected a regular expression ({e})",
                c.pattern
            )),
        }
    }
    Carriers::new(list)
}

fn station(p: &mut Problems, raw: RawStation) -> StationConfig {
    StationConfig {
        id: p.ident("station.id", raw.id),
        device_id: p.ident("station.device_id", raw.device_id),
        name: raw.name,
        pickup_sla_h: p.range(
            "station.pickup_sla_h",
            raw.pickup_sla_h,
            1,
            24 * 365,
            "hours",
        ),
        min_photos: p.range("station.min_photos", raw.min_photos, 0, 20, "photos"),
        max_self_drafts: p.range(
            "station.max_self_drafts",
            raw.max_self_drafts,
            1,
            1000,
            "drafts",
        ),
        waybill_low_water: p.range(
            "station.waybill_low_water",
            raw.waybill_low_water,
            0,
            100_000,
            "numbers",
        ),
        clock_check: p.choice(
            "station.clock_check",
            &raw.clock_check,
            &[("kernel", ClockCheck::Kernel), ("off", ClockCheck::Off)],
            ClockCheck::Kernel,
        ),
    }
}

fn storage(p: &mut Problems, s: RawStorage) -> StorageConfig {
    StorageConfig {
        data_dir: s.data_dir,
        max_photo_bytes: p.range(
            "storage.max_photo_bytes",
            s.max_photo_bytes,
            1024,
            1 << 30,
            "bytes",
        ),
        photo_max_px: p.range("storage.photo_max_px", s.photo_max_px, 64, 8000, "pixels"),
        min_free_mb: p.range(
            "storage.min_free_mb",
            s.min_free_mb,
            0,
            i64::MAX >> 20,
            "MiB",
        ),
        event_retention_days: p.range(
            "storage.event_retention_days",
            s.event_retention_days,
            1,
            3650,
            "days",
        ),
        photo_retention_days: p.range(
            "storage.photo_retention_days",
            s.photo_retention_days,
            0,
            3650,
            "days",
        ),
        photo_workers: p.range(
            "storage.photo_workers",
            s.photo_workers,
            0,
            64,
            "photos decoded at once (0: from the machine's memory)",
        ),
    }
}

fn api(p: &mut Problems, raw: RawApi) -> ApiConfig {
    let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        p.push(format!(
            "api.listen = {:?}: expected an address and port such as 127.0.0.1:8080",
            raw.listen
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    ApiConfig {
        listen,
        session_idle_min: p.range(
            "api.session_idle_min",
            raw.session_idle_min,
            1,
            720,
            "minutes",
        ),
        kiosk_idle_s: p.range("api.kiosk_idle_s", raw.kiosk_idle_s, 10, 3600, "seconds"),
        header_timeout_s: p.range(
            "api.header_timeout_s",
            raw.header_timeout_s,
            1,
            300,
            "seconds",
        ),
        body_timeout_s: p.range("api.body_timeout_s", raw.body_timeout_s, 1, 3600, "seconds"),
        idle_timeout_s: p.range("api.idle_timeout_s", raw.idle_timeout_s, 1, 3600, "seconds"),
        max_connections: p.range(
            "api.max_connections",
            raw.max_connections,
            0,
            100_000,
            "connections (0: from the open-file limit)",
        ),
    }
}

fn codes(p: &mut Problems, raw: RawCodes) -> CodesConfig {
    CodesConfig {
        offline_policy: p.choice(
            "codes.offline_policy",
            &raw.offline_policy,
            &[
                ("reject", OfflinePolicy::Reject),
                ("provisional", OfflinePolicy::Provisional),
            ],
            OfflinePolicy::Reject,
        ),
        trusted_keys: trusted_keys(p, raw.trusted_keys),
    }
}

fn log(p: &mut Problems, raw: RawLog) -> LogConfig {
    let log = LogConfig {
        format: p.choice(
            "log.format",
            &raw.format,
            &[("human", LogFormat::Human), ("json", LogFormat::Json)],
            LogFormat::Human,
        ),
        level: raw.level,
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log.level) {
        p.push(format!(
            "log.level = {:?}: expected a tracing filter such as \"info\" ({e})",
            log.level
        ));
    }
    log
}

fn sync(p: &mut Problems, s: RawSync) -> SyncConfig {
    let mqtt = mqtt(p, s.mqtt);
    let https = https(p, s.https);
    let events_via = p.choice(
        "sync.events_via",
        &s.events_via,
        &[
            ("auto", EventsVia::Auto),
            ("mqtt", EventsVia::Mqtt),
            ("https", EventsVia::Https),
        ],
        EventsVia::Auto,
    );
    match events_via {
        EventsVia::Mqtt if mqtt.is_none() && https.is_some() => p.push(
            "sync.events_via = \"mqtt\": expected sync.mqtt.url to be set as well".to_owned(),
        ),
        EventsVia::Https if https.is_none() && mqtt.is_some() => p.push(
            "sync.events_via = \"https\": expected sync.https.base_url to be set as well"
                .to_owned(),
        ),
        _ => {}
    }
    SyncConfig {
        events_via,
        status_interval_s: p.range(
            "sync.status_interval_s",
            s.status_interval_s,
            1,
            86_400,
            "seconds",
        ),
        manifest_interval_s: p.range(
            "sync.manifest_interval_s",
            s.manifest_interval_s,
            1,
            7 * 86_400,
            "seconds",
        ),
        max_bytes_per_s: p.range(
            "sync.max_bytes_per_s",
            s.max_bytes_per_s,
            0,
            1 << 40,
            "bytes per second",
        ),
        inflight: p.range("sync.inflight", s.inflight, 1, 1000, "messages"),
        batch_size: p.range("sync.batch_size", s.batch_size, 1, 5000, "events"),
        retry_initial_ms: p.range(
            "sync.retry_initial_ms",
            s.retry_initial_ms,
            10,
            600_000,
            "milliseconds",
        ),
        retry_max_s: p.range("sync.retry_max_s", s.retry_max_s, 1, 86_400, "seconds"),
        reconnect_spread_ms: p.range(
            "sync.reconnect_spread_ms",
            s.reconnect_spread_ms,
            0,
            3_600_000,
            "milliseconds",
        ),
        timeout_s: p.range("sync.timeout_s", s.timeout_s, 1, 3600, "seconds"),
        mqtt,
        https,
    }
}

fn mqtt(p: &mut Problems, m: RawMqtt) -> Option<MqttConfig> {
    let keep_alive_s = p.range("sync.mqtt.keep_alive_s", m.keep_alive_s, 5, 3600, "seconds");
    let tls_files = tls_files(
        p,
        "sync.mqtt",
        &m.ca_file,
        &m.client_cert_file,
        &m.client_key_file,
    );
    let password_file = file(p, "sync.mqtt.password_file", &m.password_file);
    let (key, urls) = match (m.url.trim().is_empty(), m.urls.is_empty()) {
        (true, true) => return None,
        (false, true) => ("sync.mqtt.url", vec![m.url]),
        (true, false) => ("sync.mqtt.urls", m.urls),
        (false, false) => {
            p.push("sync.mqtt.url and sync.mqtt.urls are both set: expected one of them".into());
            return None;
        }
    };
    let brokers: Vec<Broker> = urls.iter().filter_map(|u| broker(p, key, u)).collect();
    if brokers.len() != urls.len() {
        return None;
    }
    if let Some(plain) = brokers.iter().find(|b| !b.tls)
        && tls_files != TlsFiles::default()
    {
        p.push(format!(
            "{key}: {plain} is plain mqtt:// but TLS files are set; expected mqtts://"
        ));
    }
    Some(MqttConfig {
        brokers,
        username: Some(m.username).filter(|u| !u.is_empty()),
        password_file,
        keep_alive_s,
        tls_files,
    })
}

/// One broker URL of `key`.
fn broker(p: &mut Problems, key: &str, text: &str) -> Option<Broker> {
    let bad = |p: &mut Problems| {
        p.push(format!(
            "{key}: {text:?} is not a broker URL; expected mqtts://host:port or mqtt://host:port"
        ));
        None
    };
    let Ok(url) = url::Url::parse(text.trim()) else {
        return bad(p);
    };
    let tls = match url.scheme() {
        "mqtts" => true,
        "mqtt" => false,
        _ => return bad(p),
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return bad(p);
    };
    if url.path().len() > 1 || url.query().is_some() || !url.username().is_empty() {
        return bad(p);
    }
    Some(Broker {
        host: host.trim_matches(['[', ']']).to_owned(),
        port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
        tls,
    })
}

fn https(p: &mut Problems, h: RawHttps) -> Option<HttpsConfig> {
    let tls_files = tls_files(
        p,
        "sync.https",
        &h.ca_file,
        &h.client_cert_file,
        &h.client_key_file,
    );
    let token_file = file(p, "sync.https.token_file", &h.token_file);
    if h.base_url.trim().is_empty() {
        return None;
    }
    match url::Url::parse(&h.base_url) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.query().is_none() =>
        {
            Some(HttpsConfig {
                base_url: h.base_url.trim_end_matches('/').to_owned(),
                token_file,
                tls_files,
            })
        }
        _ => {
            p.push(format!(
                "sync.https.base_url = {:?}: expected a URL such as https://platform.example.com",
                h.base_url
            ));
            None
        }
    }
}

fn tls_files(p: &mut Problems, section: &str, ca: &str, cert: &str, key: &str) -> TlsFiles {
    let ca_file = file(p, &format!("{section}.ca_file"), ca);
    let cert = file(p, &format!("{section}.client_cert_file"), cert);
    let key = file(p, &format!("{section}.client_key_file"), key);
    let client_auth = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            p.push(format!(
                "{section}.client_cert_file / client_key_file: expected both set (mutual TLS) or neither"
            ));
            None
        }
    };
    TlsFiles {
        ca_file,
        client_auth,
    }
}

/// An optional path that, when given, must name a readable file.
fn file(p: &mut Problems, key: &str, value: &str) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    let path = PathBuf::from(value);
    if let Err(e) = std::fs::File::open(&path) {
        p.push(format!("{key} = {value:?}: expected a readable file ({e})"));
    }
    Some(path)
}

/// Problems found so far; each check returns a placeholder on failure so
/// validation can go on and report the rest.
pub(super) struct Problems(Vec<String>);

impl Problems {
    pub(super) fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    pub(super) fn ident(&mut self, key: &str, value: String) -> String {
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            self.push(format!(
                "{key} = {value:?}: expected 1-64 of A-Z, a-z, 0-9, '-', '_', '.'"
            ));
        }
        value
    }

    pub(super) fn range<T: TryFrom<i64> + Default>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
        unit: &str,
    ) -> T {
        if (min..=max).contains(&value)
            && let Ok(v) = T::try_from(value)
        {
            return v;
        }
        self.push(format!(
            "{key} = {value}: expected a whole number of {unit} from {min} to {max}"
        ));
        T::default()
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &str,
        options: &[(&str, T)],
        fallback: T,
    ) -> T {
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == value) {
            return *v;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.push(format!(
            "{key} = {value:?}: expected one of {}",
            names.join(", ")
        ));
        fallback
    }
}
