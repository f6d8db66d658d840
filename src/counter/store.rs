//! The counter's SQL: bags, their parcels, handovers.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Bag, BagState, CounterError, HandedParcel, Handover};
use crate::carrier;
use crate::parcel::ParcelId;
use crate::parcel::store::{self as parcels, Parcel};

/// A parcel named by its id or by its waybill number.
#[derive(Debug, Clone)]
pub enum ParcelRef {
    Id(ParcelId),
    Waybill(String),
}

impl ParcelRef {
    pub fn id(raw: &str) -> Result<ParcelRef, CounterError> {
        ParcelId::parse(raw).map(ParcelRef::Id).ok_or_else(|| {
            CounterError::invalid("invalid_parcel_id", format!("{raw:?} is not a parcel id"))
        })
    }

    pub fn waybill(raw: &str) -> Result<ParcelRef, CounterError> {
        carrier::normalise_waybill(raw)
            .map(ParcelRef::Waybill)
            .ok_or_else(|| {
                CounterError::invalid(
                    "invalid_waybill",
                    format!("waybill_no {raw:?} must be 8-32 letters or digits"),
                )
            })
    }

    /// The parcel it names, at this station.
    pub fn resolve(&self, conn: &Connection) -> Result<Parcel, CounterError> {
        let id = match self {
            ParcelRef::Id(id) => id.clone(),
            ParcelRef::Waybill(wb) => {
                let id: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM parcels WHERE waybill_no = ?1
                         AND state IN ('accepted', 'handed_over', 'held')",
                    )?
                    .query_row([wb], |r| r.get(0))
                    .optional()?;
                id.and_then(|i| ParcelId::parse(&i)).ok_or_else(|| {
                    CounterError::refused(
                        "unknown_waybill",
                        format!("no parcel with waybill {wb} is at this station"),
                    )
                })?
            }
        };
        parcels::get(conn, &id)?.ok_or(CounterError::ParcelNotFound(id))
    }
}

const BAG_SELECT: &str = "SELECT b.id, b.code, b.state, b.clerk_id, b.created_at, b.handover_id,
    (SELECT COUNT(*) FROM bag_parcels bp WHERE bp.bag_id = b.id) FROM bags b";

fn bag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bag> {
    let state: String = r.get(2)?;
    Ok(Bag {
        id: r.get(0)?,
        code: r.get(1)?,
        state: BagState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown bag state {state:?}").into(),
            )
        })?,
        clerk_id: r.get(3)?,
        created_at: r.get(4)?,
        handover_id: r.get(5)?,
        parcel_count: r.get(6)?,
        parcels: None,
    })
}

/// A bag by id, or an open bag by code (upper-cased).
pub fn find_bag(conn: &Connection, key: &str) -> Result<Option<Bag>, CounterError> {
    let by_id = conn
        .prepare_cached(&format!("{BAG_SELECT} WHERE b.id = ?1"))?
        .query_row([key], bag_row)
        .optional()?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    Ok(conn
        .prepare_cached(&format!(
            "{BAG_SELECT} WHERE b.code = ?1 AND b.state = 'open'"
        ))?
        .query_row([key.trim().to_ascii_uppercase()], bag_row)
        .optional()?)
}

/// Open bags, newest first.
pub fn open_bags(conn: &Connection) -> Result<Vec<Bag>, CounterError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{BAG_SELECT} WHERE b.state = 'open' ORDER BY b.created_at DESC"
    ))?;
    let rows = stmt.query_map([], bag_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn open_bag_exists(tx: &Transaction<'_>, code: &str) -> Result<bool, CounterError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM bags WHERE code = ?1 AND state = 'open'")?
        .exists([code])?)
}

pub fn insert_bag(tx: &Transaction<'_>, bag: &Bag) -> Result<(), CounterError> {
    tx.execute(
        "INSERT INTO bags (id, code, state, clerk_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            bag.id,
            bag.code,
            bag.state.as_str(),
            bag.clerk_id,
            bag.created_at
        ],
    )?;
    Ok(())
}

/// The bag a parcel is in, if any.
pub fn bag_of(conn: &Connection, parcel: &ParcelId) -> Result<Option<String>, CounterError> {
    Ok(conn
        .prepare_cached("SELECT bag_id FROM bag_parcels WHERE parcel_id = ?1")?
        .query_row([parcel.as_str()], |r| r.get(0))
        .optional()?)
}

/// The code of the open bag a parcel is in, if any.
pub fn open_bag_of(conn: &Connection, parcel: &ParcelId) -> Result<Option<String>, CounterError> {
    Ok(conn
        .prepare_cached(
            "SELECT b.code FROM bag_parcels bp JOIN bags b ON b.id = bp.bag_id
             WHERE bp.parcel_id = ?1 AND b.state = 'open'",
        )?
        .query_row([parcel.as_str()], |r| r.get(0))
        .optional()?)
}

pub fn add_to_bag(tx: &Transaction<'_>, parcel: &ParcelId, bag: &str) -> Result<(), CounterError> {
    tx.execute(
        "INSERT INTO bag_parcels (parcel_id, bag_id, added_at) VALUES (?1, ?2, ?3)",
        params![parcel.as_str(), bag, crate::clock::now_string()],
    )?;
    Ok(())
}

/// Takes a parcel out of whatever bag holds it.
pub fn remove_from_bags(tx: &Transaction<'_>, parcel: &ParcelId) -> Result<(), CounterError> {
    tx.execute(
        "DELETE FROM bag_parcels WHERE parcel_id = ?1",
        [parcel.as_str()],
    )?;
    Ok(())
}

pub fn bag_parcels(conn: &Connection, bag_id: &str) -> Result<Vec<HandedParcel>, CounterError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.return_no, p.waybill_no, p.state, bp.bag_id FROM bag_parcels bp
         JOIN parcels p ON p.id = bp.parcel_id WHERE bp.bag_id = ?1 ORDER BY bp.added_at, p.id",
    )?;
    let rows = stmt.query_map([bag_id], handed_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// (id, return_no, waybill_no, state, bag_id) as selected above and below.
fn handed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HandedParcel> {
    Ok(HandedParcel {
        parcel_id: r.get(0)?,
        return_no: r.get(1)?,
        waybill_no: r.get(2)?,
        state: r.get(3)?,
        bag_id: r.get(4)?,
    })
}

/// Records a handover (its parcels follow, one [`add_handed`] each).
pub fn insert_handover(tx: &Transaction<'_>, h: &Handover) -> Result<(), CounterError> {
    tx.execute(
        "INSERT INTO handovers (id, courier, carrier, clerk_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![h.id, h.courier, h.carrier, h.clerk_id, h.created_at],
    )?;
    Ok(())
}

pub fn add_handed(
    tx: &Transaction<'_>,
    parcel: &ParcelId,
    handover: &str,
    bag: Option<&str>,
) -> Result<(), CounterError> {
    tx.prepare_cached(
        "INSERT INTO handover_parcels (parcel_id, handover_id, bag_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![parcel.as_str(), handover, bag])?;
    Ok(())
}

/// A bag leaves with its handover.
pub fn close_bag(tx: &Transaction<'_>, bag: &str, handover: &str) -> Result<(), CounterError> {
    tx.execute(
        "UPDATE bags SET state = ?3, handover_id = ?2 WHERE id = ?1",
        params![bag, handover, BagState::HandedOver.as_str()],
    )?;
    Ok(())
}

/// One handover with its parcels.
pub fn load_handover(conn: &Connection, id: &str) -> Result<Option<Handover>, CounterError> {
    let head = conn
        .prepare_cached(
            "SELECT id, courier, carrier, clerk_id, created_at FROM handovers WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(Handover {
                id: r.get(0)?,
                courier: r.get(1)?,
                carrier: r.get(2)?,
                clerk_id: r.get(3)?,
                created_at: r.get(4)?,
                parcels: Vec::new(),
                token: None,
            })
        })
        .optional()?;
    let Some(mut h) = head else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.return_no, p.waybill_no, p.state, hp.bag_id FROM handover_parcels hp
         JOIN parcels p ON p.id = hp.parcel_id WHERE hp.handover_id = ?1 ORDER BY p.id",
    )?;
    let rows = stmt.query_map([id], handed_row)?;
    h.parcels = rows.collect::<Result<_, _>>()?;
    Ok(Some(h))
}

/// Recent handovers, newest first, with their parcel counts.
pub fn recent_handovers(
    conn: &Connection,
    limit: u32,
) -> Result<Vec<serde_json::Value>, CounterError> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.id, h.courier, h.carrier, h.clerk_id, h.created_at,
                (SELECT COUNT(*) FROM handover_parcels hp WHERE hp.handover_id = h.id)
         FROM handovers h ORDER BY h.created_at DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(serde_json::json!({
            "id": r.get::<_, String>(0)?, "courier": r.get::<_, String>(1)?,
            "carrier": r.get::<_, String>(2)?, "clerk_id": r.get::<_, Option<String>>(3)?,
            "created_at": r.get::<_, String>(4)?, "parcel_count": r.get::<_, i64>(5)?,
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
