//! Stages 2 and 3: the raw, serde-shaped configuration and its validation
//! into [`Config`], collecting every problem with its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Table, Value};

use super::{ApiConfig, CodesConfig, Config, LogConfig, LogFormat, StationConfig, StorageConfig};
use crate::carrier::{Carrier, Carriers};
use crate::clock::ClockCheck;
use crate::code::{OfflinePolicy, TrustedKeys};
use crate::token;

const SECTIONS: [&str; 6] = ["station", "storage", "api", "codes", "carriers", "log"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    id: String,
    device_id: String,
    name: String,
    pickup_sla_h: i64,
    min_photos: i64,
    clock_check: String,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: String,
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
    log: RawLog,
}

impl Raw {
    /// Deserialises each section on its own so that problems in several
    /// sections are all reported.
    pub(super) fn from_table(mut table: Table) -> Result<Raw, Vec<String>> {
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
        let mut take = |name: &str| table.remove(name).unwrap_or(Value::Table(Table::new()));
        let station = section::<RawStation>("station", take("station"), &mut problems);
        let storage = section::<RawStorage>("storage", take("storage"), &mut problems);
        let api = section::<RawApi>("api", take("api"), &mut problems);
        let codes = section::<RawCodes>("codes", take("codes"), &mut problems);
        let carriers = section::<Vec<RawCarrier>>("carriers", take("carriers"), &mut problems);
        let log = section::<RawLog>("log", take("log"), &mut problems);
        match (station, storage, api, codes, carriers, log) {
            (Some(station), Some(storage), Some(api), Some(codes), Some(carriers), Some(log))
                if problems.is_empty() =>
            {
                Ok(Raw {
                    station,
                    storage,
                    api,
                    codes,
                    carriers,
                    log,
                })
            }
            _ => Err(problems),
        }
    }

    /// Checks every value; all problems are returned together.
    pub(super) fn validate(self) -> Result<Config, Vec<String>> {
        let mut p = Problems(Vec::new());
        let station = StationConfig {
            id: p.ident("station.id", self.station.id),
            device_id: p.ident("station.device_id", self.station.device_id),
            name: self.station.name,
            pickup_sla_h: p.range(
                "station.pickup_sla_h",
                self.station.pickup_sla_h,
                1,
                24 * 365,
                "hours",
            ),
            min_photos: p.range(
                "station.min_photos",
                self.station.min_photos,
                0,
                20,
                "photos",
            ),
            clock_check: p.choice(
                "station.clock_check",
                &self.station.clock_check,
                &[("kernel", ClockCheck::Kernel), ("off", ClockCheck::Off)],
                ClockCheck::Kernel,
            ),
        };
        let s = self.storage;
        let storage = StorageConfig {
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
        };
        let listen = self.api.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            p.push(format!(
                "api.listen = {:?}: expected an address and port such as 127.0.0.1:8080",
                self.api.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let codes = CodesConfig {
            offline_policy: p.choice(
                "codes.offline_policy",
                &self.codes.offline_policy,
                &[
                    ("reject", OfflinePolicy::Reject),
                    ("provisional", OfflinePolicy::Provisional),
                ],
                OfflinePolicy::Reject,
            ),
            trusted_keys: trusted_keys(&mut p, self.codes.trusted_keys),
        };
        let carriers = carriers(&mut p, self.carriers);
        let log = LogConfig {
            format: p.choice(
                "log.format",
                &self.log.format,
                &[("human", LogFormat::Human), ("json", LogFormat::Json)],
                LogFormat::Human,
            ),
            level: self.log.level,
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log.level) {
            p.push(format!(
                "log.level = {:?}: expected a tracing filter such as \"info\" ({e})",
                log.level
            ));
        }
        if p.0.is_empty() {
            Ok(Config {
                station,
                storage,
                api: ApiConfig { listen },
                codes,
                carriers,
                log,
            })
        } else {
            Err(p.0)
        }
    }
}

fn section<T: DeserializeOwned>(name: &str, value: Value, problems: &mut Vec<String>) -> Option<T> {
    value
        .try_into::<T>()
        .map_err(|e| problems.push(format!("[{name}]: {}", e.to_string().trim())))
        .ok()
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

/// Problems found so far; each check returns a placeholder on failure so
/// validation can go on and report the rest.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn ident(&mut self, key: &str, value: String) -> String {
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

    fn range<T: TryFrom<i64> + Default>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
        unit: &str,
    ) -> T {
        if (min..=max).contains(&value) {
            if let Ok(v) = T::try_from(value) {
                return v;
            }
        }
        self.push(format!(
            "{key} = {value}: expected a whole number of {unit} from {min} to {max}"
        ));
        T::default()
    }

    fn choice<T: Copy>(&mut self, key: &str, value: &str, options: &[(&str, T)], fallback: T) -> T {
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
