//! `yizhan verify TOKEN`: what one of the station's signed tokens (a `YZK1`
//! receipt, a `YZH1` handover) proves, checked offline against the
//! station's key, or another station's with `--key` and `--station`.

use anyhow::{Context, Result};

use super::{CliError, Output};
use crate::config::Config;
use crate::custody::{self, Verdict};
use crate::{identity, token};

pub struct Args {
    pub token: String,
    pub key: Option<String>,
    pub station: Option<String>,
}

pub fn run(config: &Config, args: Args, out: Output) -> Result<()> {
    let key = match &args.key {
        Some(b64) => token::parse_public_key(b64)
            .map_err(|e| CliError::BadArgument(format!("--key {b64:?}: {e}")))?,
        None => identity::public_key(&config.key_path())
            .context("device key")?
            .ok_or_else(|| {
                CliError::NotFound(format!(
                    "no device key at {}: has `yizhan run` started here, or is --config missing? \
                     (to check another station's token, give --key and --station)",
                    config.key_path().display()
                ))
            })?,
    };
    let station = args.station.as_deref().unwrap_or(&config.station.id);
    let verdict = Verdict::from(custody::verify(&args.token, &key, station));
    if verdict.valid {
        return out.print(&verdict, |v| {
            println!("valid: signed by station {station}'s key");
            for line in &v.proves {
                println!("  {line}");
            }
        });
    }
    let why = verdict.message.clone().unwrap_or_default();
    out.print_failed(
        &verdict,
        CliError::CheckFailed(format!("not valid: {why}")),
        |_| {},
    )
}
