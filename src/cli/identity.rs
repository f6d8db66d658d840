//! `yizhan identity`: who this kiosk is and the key its receipts verify
//! with (created now if the daemon has not run yet).

use anyhow::{Context, Result};
use serde_json::json;

use super::Output;
use crate::config::Config;
use crate::{identity, token};

pub fn run(config: &Config, out: Output) -> Result<()> {
    let key = identity::load_or_create(&config.key_path()).context("device key")?;
    let info = json!({
        "station_id": config.station.id,
        "device_id": config.station.device_id,
        "receipt_public_key": token::public_key_base64(&key.verifying_key()),
        "key_file": config.key_path().display().to_string(),
    });
    out.print(&info, |i| {
        println!(
            "station    {}",
            i["station_id"].as_str().unwrap_or_default()
        );
        println!("device     {}", i["device_id"].as_str().unwrap_or_default());
        println!(
            "public key {} (Ed25519, base64; verifies YZK1 receipts)",
            i["receipt_public_key"].as_str().unwrap_or_default()
        );
    })
}
