//! `yizhan parcels list|show`.

use anyhow::Result;

use super::CliError;

use super::{Output, ParcelsCommand, open_db};
use crate::config::Config;
use crate::parcel::store::{self, Parcel};
use crate::parcel::{ParcelId, State};

pub fn run(config: &Config, cmd: ParcelsCommand, out: Output) -> Result<()> {
    let db = open_db(config, false)?;
    match cmd {
        ParcelsCommand::List { state, limit } => {
            let state = state
                .map(|s| s.parse::<State>())
                .transpose()
                .map_err(CliError::BadArgument)?;
            let parcels = db.read_blocking(|c| store::list(c, state, limit))?;
            out.print(&parcels, |ps| {
                if ps.is_empty() {
                    println!("no parcels");
                }
                for p in ps {
                    println!(
                        "{}  {:<20} {:<22} {:<16} {}",
                        p.id,
                        p.state.as_str(),
                        p.return_no,
                        p.waybill_no.as_deref().unwrap_or("-"),
                        p.created_at
                    );
                }
            })
        }
        ParcelsCommand::Show { id } => {
            let pid = ParcelId::parse(&id).ok_or_else(|| {
                CliError::BadArgument(format!("{id:?} is not a parcel id (a 26-character ULID)"))
            })?;
            let parcel = db
                .read_blocking(|c| store::get(c, &pid))?
                .ok_or_else(|| CliError::NotFound(format!("no parcel {id}")))?;
            out.print(&parcel, print_parcel)
        }
    }
}

fn print_parcel(p: &Parcel) {
    let show = |label: &str, v: Option<String>| {
        if let Some(v) = v {
            println!("{label:<12} {v}");
        }
    };
    show("id", Some(p.id.to_string()));
    show("state", Some(p.state.to_string()));
    show("return", Some(p.return_no.clone()));
    show("channel", Some(p.channel.as_str().to_owned()));
    show("provisional", p.provisional.then(|| "yes".to_owned()));
    show("waybill", p.waybill_no.clone());
    show("carrier", p.carrier.clone());
    show("condition", p.condition.map(|c| c.as_str().to_owned()));
    show("receipt", p.receipt_id.clone());
    show("custody at", p.custody_at.clone());
    show("created at", Some(p.created_at.clone()));
    for ph in &p.photos {
        println!(
            "photo        {} {} {}x{} {} bytes",
            ph.kind.as_str(),
            ph.sha256,
            ph.width,
            ph.height,
            ph.bytes
        );
    }
}
