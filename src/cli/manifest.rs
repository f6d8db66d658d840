//! `yizhan manifest import FILE.json`: load authorised returns without a
//! platform connection (the §6.2 manifest shape).

use anyhow::{Context, Result};

use super::{ManifestCommand, Output, open_db};
use crate::config::Config;
use crate::db::Durability;
use crate::manifest::{self, ManifestError};

pub fn run(config: &Config, cmd: ManifestCommand, out: Output) -> Result<()> {
    let ManifestCommand::Import { file } = cmd;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let page = manifest::parse(&bytes)
        .with_context(|| format!("{} refused; nothing imported", file.display()))?;
    let db = open_db(config, true)?;
    let (n, numbers) = db.write_blocking(Durability::Full, |tx| -> Result<_, ManifestError> {
        let n = manifest::upsert(tx, &page.returns)?;
        let mut numbers = 0;
        for block in &page.waybill_pools {
            numbers += crate::pool::add(tx, block)?;
        }
        if let Some(cursor) = &page.cursor {
            manifest::set_cursor(tx, cursor)?;
        }
        Ok((n, numbers))
    })?;
    out.print(
        &serde_json::json!({ "imported": n, "waybill_numbers": numbers, "cursor": page.cursor }),
        |_| {
            println!("imported {n} return(s) from {}", file.display());
            if numbers > 0 {
                println!("added {numbers} e-waybill number(s) to the pools");
            }
        },
    )
}
