//! `yizhan config check`: validate, list every problem, exit 1 if any. Runs
//! as the systemd unit's `ExecStartPre`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::CliError;
use crate::config::{Config, ConfigError};

pub fn run(config: Result<Config, ConfigError>, file: Option<&Path>, json: bool) -> Result<()> {
    let source = file.map_or_else(
        || "embedded defaults".to_owned(),
        |p| p.display().to_string(),
    );
    match config {
        Ok(c) => {
            if json {
                println!(
                    "{}",
                    json!({ "ok": true, "source": source, "station_id": c.station.id, "listen": c.api.listen.to_string() })
                );
            } else {
                println!(
                    "configuration OK ({source}): station {} device {}, API on {}, data in {}",
                    c.station.id,
                    c.station.device_id,
                    c.api.listen,
                    c.storage.data_dir.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            let problems = match &e {
                ConfigError::Invalid(p) => p.clone(),
                other => vec![other.to_string()],
            };
            let e = anyhow::Error::new(e).context(format!("configuration refused ({source})"));
            if !json {
                return Err(e);
            }
            // One JSON document: the problems one by one, and the error
            // in the form every `--json` failure has.
            println!(
                "{}",
                json!({
                    "ok": false,
                    "source": source,
                    "problems": problems,
                    "error": { "code": "config_invalid", "message": super::message_of(&e) },
                })
            );
            Err(CliError::Reported.into())
        }
    }
}
