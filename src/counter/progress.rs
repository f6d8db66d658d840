//! What a customer may see about their return (SPEC §6.4): no personal
//! data, from a return number, a return code or this station's receipt.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::CounterError;
use crate::parcel::State;
use crate::station::Station;
use crate::{code, receipt};

/// A return's progress as the customer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub return_no: String,
    /// `authorized` / `cancelled` as the manifest says, if it lists it.
    pub authorization: Option<String>,
    /// The parcel at this station, if it was dropped off here.
    pub parcel: Option<ParcelProgress>,
    /// What the platform last reported (SPEC §6.4).
    pub platform: Option<PlatformProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParcelProgress {
    pub state: State,
    pub dropped_off_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformProgress {
    pub status: String,
    pub at: String,
}

impl Station {
    /// A customer's view of a return, from a return number, a return code
    /// or the receipt this station gave them.
    pub async fn progress(&self, scanned: &str) -> Result<Progress, CounterError> {
        let rn = self.return_no_of(scanned)?;
        self.db()
            .read(move |c| {
                let authorization =
                    crate::manifest::get(c, &rn)?.map(|m| m.status.as_str().to_owned());
                let parcel = c
                    .prepare_cached(
                        "SELECT state, custody_at, updated_at FROM parcels
                         WHERE return_no = ?1 AND state <> 'draft'
                         ORDER BY created_at DESC LIMIT 1",
                    )?
                    .query_row([&rn], |r| {
                        Ok(ParcelProgress {
                            state: r.get::<_, String>(0)?.parse().unwrap_or(State::Dropped),
                            dropped_off_at: r.get(1)?,
                            updated_at: r.get(2)?,
                        })
                    })
                    .optional()?;
                let platform = c
                    .prepare_cached("SELECT status, at FROM return_progress WHERE return_no = ?1")?
                    .query_row([&rn], |r| {
                        Ok(PlatformProgress {
                            status: r.get(0)?,
                            at: r.get(1)?,
                        })
                    })
                    .optional()?;
                if authorization.is_none() && parcel.is_none() && platform.is_none() {
                    return Err(CounterError::refused(
                        "unknown_return",
                        format!("this station knows nothing about return {rn} yet"),
                    ));
                }
                Ok(Progress {
                    return_no: rn,
                    authorization,
                    parcel,
                    platform,
                })
            })
            .await
    }

    /// The return number behind a typed or scanned text: a YZK1 receipt of
    /// this device, a YZR1 code, a URL or a plain number.
    fn return_no_of(&self, scanned: &str) -> Result<String, CounterError> {
        let s = scanned.trim();
        if s.starts_with("YZK1.") {
            return receipt::verify(s, &self.public_key())
                .map(|c| c.rn)
                .map_err(|_| {
                    CounterError::invalid(
                        "invalid_receipt",
                        "this receipt was not issued by this station or is damaged",
                    )
                });
        }
        let cfg = self.config();
        code::parse(s.as_bytes(), &cfg.codes.trusted_keys, &cfg.station.id)
            .map(|p| p.return_no().to_owned())
            .map_err(|reason| {
                CounterError::invalid(
                    "invalid_code",
                    format!("not a return number, return code or receipt ({reason})"),
                )
            })
    }
}
