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
    let n = db.write_blocking(Durability::Full, |tx| -> Result<usize, ManifestError> {
        let n = manifest::upsert(tx, &page.returns)?;
        if let Some(cursor) = &page.cursor {
            manifest::set_cursor(tx, cursor)?;
        }
        Ok(n)
    })?;
    out.print(
        &serde_json::json!({ "imported": n, "cursor": page.cursor }),
        |_| {
            println!("imported {n} return(s) from {}", file.display());
        },
    )
}
