//! Configuration: defaults → file → `YIZHAN_*` environment, then validated.
//!
//! # Stages
//! 1. Layering on TOML tables: the embedded `config/yizhan.toml` (the
//!    documented default, so docs and behaviour cannot drift), the file
//!    given with `--config`, then `YIZHAN_<SECTION>__<KEY>` variables.
//! 2. Each section is deserialised into a raw struct that denies unknown
//!    keys; failures are collected per section rather than stopping at the
//!    first.
//! 3. [`Config::try_from`] checks values and collects **every** problem,
//!    each naming the key, the value and what is expected.

mod hardware;
mod layer;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::carrier::Carriers;
use crate::clock::ClockCheck;
use crate::code::{OfflinePolicy, TrustedKeys};

pub use hardware::{
    AutoPrint, BAUD_RATES, CameraConfig, HardwareConfig, PrinterConfig, PrinterLink, ScaleConfig,
    ScannerConfig, ScannerKind,
};
pub use layer::DEFAULT_TOML;

/// A configuration that could not be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// `[station]`: who this kiosk is.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub id: String,
    pub device_id: String,
    pub name: String,
    pub pickup_sla_h: u32,
    pub min_photos: u32,
    pub clock_check: ClockCheck,
    /// Self-service drafts open at once, at most (anonymous scans cannot
    /// flood the database).
    pub max_self_drafts: u32,
    /// A carrier's e-waybill pool with fewer free numbers than this is a
    /// warning (SPEC §2.5).
    pub waybill_low_water: u32,
}

/// `[storage]`: where data lives and how much of it.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub max_photo_bytes: u64,
    pub photo_max_px: u32,
    pub min_free_mb: u64,
    pub event_retention_days: u32,
    pub photo_retention_days: u32,
    /// Photos (and camera frames) decoded at once; 0: one per 256 MiB of
    /// memory, at most the number of cores.
    pub photo_workers: u32,
}

/// `[api]`: the local HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// A clerk session ends after this many minutes without a request.
    pub session_idle_min: u32,
    /// The customer screens go back to the start after this many seconds
    /// without a touch or a scan.
    pub kiosk_idle_s: u32,
    /// A request's headers must arrive within this many seconds of the
    /// connection (or its previous request).
    pub header_timeout_s: u32,
    /// A request's body must arrive within this many seconds.
    pub body_timeout_s: u32,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout_s: u32,
    /// Connections served at once; more are answered 503 `busy` at once.
    /// 0: three quarters of the open-file limit left after a reserve.
    pub max_connections: u32,
}

/// `[codes]`: return-code policy and trusted platform keys.
#[derive(Debug, Clone)]
pub struct CodesConfig {
    pub offline_policy: OfflinePolicy,
    pub trusted_keys: TrustedKeys,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Which transport carries events up (`sync.events_via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsVia {
    Mqtt,
    Https,
    /// MQTT while connected, HTTPS while it is not.
    Auto,
}

impl EventsVia {
    pub fn as_str(self) -> &'static str {
        match self {
            EventsVia::Mqtt => "mqtt",
            EventsVia::Https => "https",
            EventsVia::Auto => "auto",
        }
    }
}

/// Trust and client identity for one TLS peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA bundle; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
}

/// One broker of `sync.mqtt.url`/`urls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `[sync.mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// In the order to try them; never empty.
    pub brokers: Vec<Broker>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub keep_alive_s: u64,
    pub tls_files: TlsFiles,
}

/// `[sync.https]`.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Without a trailing slash.
    pub base_url: String,
    pub token_file: Option<PathBuf>,
    pub tls_files: TlsFiles,
}

/// `[sync]`: delivery to the platform (SPEC §6).
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub events_via: EventsVia,
    pub status_interval_s: u64,
    pub manifest_interval_s: u64,
    /// 0: no cap.
    pub max_bytes_per_s: u64,
    pub inflight: u16,
    pub batch_size: u32,
    pub retry_initial_ms: u64,
    pub retry_max_s: u64,
    /// The first reconnect after a lost connection waits a random
    /// `0..reconnect_spread_ms`.
    pub reconnect_spread_ms: u64,
    pub timeout_s: u64,
    pub mqtt: Option<MqttConfig>,
    pub https: Option<HttpsConfig>,
}

impl SyncConfig {
    /// Whether any platform is configured at all.
    pub fn enabled(&self) -> bool {
        self.mqtt.is_some() || self.https.is_some()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub station: StationConfig,
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub codes: CodesConfig,
    pub carriers: Carriers,
    pub sync: SyncConfig,
    pub log: LogConfig,
    pub hardware: HardwareConfig,
}

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(file, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::from_table(layer::layered(file, env)?)
    }

    /// Every problem at once: those of the keys' types and names, then
    /// those of the values (checked with the wrong keys set aside).
    fn from_table(mut table: toml::Table) -> Result<Config, ConfigError> {
        let (raw, mut problems) = raw::Raw::from_table_patched(&mut table);
        let Some(raw) = raw else {
            return Err(ConfigError::Invalid(problems));
        };
        match raw.validate() {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError::Invalid(problems)),
            Err(more) => {
                problems.extend(more);
                Err(ConfigError::Invalid(problems))
            }
        }
    }

    /// The embedded defaults with `text` (a configuration file's content)
    /// over them, without the environment.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_table(layer::layered_text(text)?)
    }

    /// The embedded defaults alone.
    pub fn defaults() -> Result<Config, ConfigError> {
        Config::load_with_env(None, std::iter::empty())
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.data_dir.join("yizhan.db")
    }

    pub fn photos_dir(&self) -> PathBuf {
        self.storage.data_dir.join("photos")
    }

    pub fn key_path(&self) -> PathBuf {
        self.storage.data_dir.join("device.key")
    }

    /// The operator's bearer token for the running daemon (SPEC §7: the
    /// CLI and scripts on the kiosk use it for clerk endpoints).
    pub fn operator_token_path(&self) -> PathBuf {
        self.storage.data_dir.join("operator.token")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.storage.data_dir.join("backups")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_toml(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.toml");
        std::fs::write(&path, text).unwrap();
        Config::load_with_env(Some(&path), env(vars))
    }

    #[test]
    fn every_file_in_config_dir_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load_with_env(Some(&path), [])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!((c.station.pickup_sla_h, c.station.min_photos), (48, 1));
        assert_eq!(c.storage.max_photo_bytes, 10 * 1024 * 1024);
        assert_eq!(c.storage.photo_max_px, 1600);
        assert_eq!(c.codes.offline_policy, OfflinePolicy::Provisional);
        assert_eq!(
            c.carriers
                .detect("SF1234567890123")
                .map(|c| c.code.as_str()),
            Some("SF")
        );
    }

    #[test]
    fn file_then_env_override() {
        let c = load_toml(
            "[api]\nlisten = \"127.0.0.1:9000\"\n[station]\nid = \"ST-9\"\n",
            &[
                ("YIZHAN_STATION__ID", "ST-ENV"),
                ("YIZHAN_STATION__PICKUP_SLA_H", "12"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.api.listen.port(), 9000);
        assert_eq!(c.station.id, "ST-ENV");
        assert_eq!(c.station.pickup_sla_h, 12);
        assert_eq!(
            c.station.device_id, "kiosk-a",
            "untouched keys keep their defaults"
        );
    }

    #[test]
    fn sync_settings_are_checked_and_parsed() {
        let err = load_toml(
            "[sync]\nevents_via = \"mqtt\"\ninflight = 0\n\
             [sync.mqtt]\nurl = \"\"\n\
             [sync.https]\nbase_url = \"ftp://x\"\nclient_cert_file = \"Cargo.toml\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        for want in [
            "sync.inflight = 0",
            "sync.https.base_url = \"ftp://x\"",
            "client_cert_file / client_key_file",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = load_toml(
            "[sync]\nevents_via = \"mqtt\"\n[sync.https]\nbase_url = \"https://p.example\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sync.events_via = \"mqtt\""), "{err}");
        let c = load_toml(
            "[sync.mqtt]\nurl = \"mqtts://broker.example:9999\"\nusername = \"k1\"\n",
            &[("YIZHAN_SYNC__HTTPS__BASE_URL", "https://p.example/")],
        )
        .unwrap();
        let m = c.sync.mqtt.as_ref().unwrap();
        assert_eq!(m.brokers.len(), 1);
        assert_eq!(
            (
                m.brokers[0].host.as_str(),
                m.brokers[0].port,
                m.brokers[0].tls
            ),
            ("broker.example", 9999, true)
        );
        let list = load_toml(
            "[sync.mqtt]\nurls = [\"mqtt://a.example\", \"mqtts://[::1]:8884\"]\n",
            &[],
        )
        .unwrap();
        let names: Vec<String> = list
            .sync
            .mqtt
            .unwrap()
            .brokers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["mqtt://a.example:1883", "mqtts://[::1]:8884"]);
        let env = load_toml("", &[("YIZHAN_SYNC__MQTT__URLS", "mqtt://a:1,mqtt://b:2")]).unwrap();
        assert_eq!(env.sync.mqtt.unwrap().brokers.len(), 2);
        for (bad, says) in [
            ("url = \"mqtt://a\"\nurls = [\"mqtt://b\"]", "both set"),
            (
                "urls = [\"mqtt://a\", \"http://b\"]",
                "\"http://b\" is not a broker URL",
            ),
        ] {
            let err = load_toml(&format!("[sync.mqtt]\n{bad}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(c.sync.https.as_ref().unwrap().base_url, "https://p.example");
        assert!(c.sync.enabled());
        assert!(
            !Config::defaults().unwrap().sync.enabled(),
            "offline by default"
        );
    }

    #[test]
    fn every_problem_is_listed_with_key_value_and_expectation() {
        let err = load_toml(
            "[station]\nid = \"\"\npickup_sla_h = 0\n[api]\nlisten = \"nowhere\"\n\
             [codes]\noffline_policy = \"maybe\"\n[codes.trusted_keys]\nk1 = \"AAAA\"\n\
             [log]\nformat = \"xml\"\n[[carriers]]\ncode = \"X\"\nname = \"x\"\npattern = \"(\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        for want in [
            "station.id = \"\"",
            "station.pickup_sla_h = 0",
            "api.listen = \"nowhere\"",
            "codes.offline_policy = \"maybe\"",
            "codes.trusted_keys.k1",
            "log.format = \"xml\"",
            "carriers[0].pattern",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let err = load_toml(
            "[station]\nidd = \"x\"\n[storage]\nmin_free_mb = \"lots\"\n[extra]\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("idd"), "{err}");
        assert!(err.contains("storage"), "{err}");
        assert!(err.contains("extra"), "{err}");
        let err = Config::load_with_env(None, env(&[("YIZHAN_API__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let err = Config::load_with_env(None, env(&[("YIZHAN_STATION__MIN_PHOTOS", "two")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("YIZHAN_STATION__MIN_PHOTOS"), "{err}");
    }

    #[test]
    fn unreadable_and_unparsable_files_say_so() {
        let missing =
            Config::load_with_env(Some(Path::new("/nonexistent/y.toml")), []).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }));
        let bad = load_toml("[station\n", &[]).unwrap_err();
        assert!(matches!(bad, ConfigError::Syntax { .. }), "{bad}");
    }
}
