//! The counter after check-in (SPEC §2.3, §2.4, §6.4): consolidation into
//! bags, courier handover, giving a held parcel back, and the progress a
//! customer sees.
//!
//! # Invariants
//! - Each operation is one fsync'd transaction: every parcel it names moves
//!   (with one event each) or none does, and the answer names the parcel
//!   that stopped it.
//! - A parcel is handed over once (its row in `handover_parcels` is keyed
//!   by parcel) and sits in at most one bag.
//! - A parcel in an open bag leaves with its bag: handing it over alone is
//!   refused, so the platform's picture of a bag is never wrong.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::carrier;
use crate::checkin::input::bounded_text;
use crate::checkin::CheckinError;
use crate::code;
use crate::db::Durability;
use crate::metrics::Counted;
use crate::outbox::{self, EventType};
use crate::parcel::store::{self, Changes, Parcel};
use crate::parcel::{Action, ParcelId, State};
use crate::receipt;
use crate::station::{Notice, Station};

/// Most parcels one handover takes.
const MAX_HANDOVER: usize = 2000;

/// A consolidation bag or tote.
#[derive(Debug, Clone, Serialize)]
pub struct Bag {
    pub id: String,
    pub code: String,
    pub state: String,
    pub clerk_id: Option<String>,
    pub created_at: String,
    pub handover_id: Option<String>,
    pub parcel_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parcels: Option<Vec<HandedParcel>>,
}

/// `POST /api/v1/handovers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverInput {
    pub courier: String,
    pub carrier: String,
    #[serde(default)]
    pub parcel_ids: Vec<String>,
    #[serde(default)]
    pub waybill_nos: Vec<String>,
    #[serde(default)]
    pub bag_ids: Vec<String>,
}

/// One courier pickup.
#[derive(Debug, Clone, Serialize)]
pub struct Handover {
    pub id: String,
    pub courier: String,
    pub carrier: String,
    pub clerk_id: Option<String>,
    pub created_at: String,
    pub parcels: Vec<HandedParcel>,
}

/// A parcel as listed in a bag or a handover.
#[derive(Debug, Clone, Serialize)]
pub struct HandedParcel {
    pub parcel_id: String,
    pub return_no: String,
    pub waybill_no: Option<String>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bag_id: Option<String>,
}

/// What a customer may see about their return (no personal data).
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
    /// A clerk gives a held parcel back: `held` → `returned_to_customer`.
    /// It leaves any bag it was in.
    pub async fn return_to_customer(
        &self,
        id: &ParcelId,
        clerk_id: Option<String>,
    ) -> Result<Parcel, CheckinError> {
        let station = self.clone();
        let id = id.clone();
        let parcel = self
            .db()
            .write(Durability::Full, move |tx| {
                let changes = Changes {
                    clerk_id: clerk_id.clone(),
                    ..Changes::default()
                };
                let p = store::transition(tx, &id, Action::ReturnToCustomer, changes)?;
                tx.execute(
                    "DELETE FROM bag_parcels WHERE parcel_id = ?1",
                    [id.as_str()],
                )?;
                outbox::append(
                    tx,
                    station.events(),
                    EventType::ReturnedToCustomer,
                    &id,
                    &p.return_no,
                    json!({ "clerk_id": clerk_id }),
                )?;
                Ok::<_, CheckinError>(p)
            })
            .await?;
        self.committed(&parcel, Counted::ReturnedToCustomer);
        Ok(parcel)
    }

    /// Opens a bag under its barcode (a generated one if `code` is `None`).
    pub async fn open_bag(
        &self,
        code: Option<String>,
        clerk_id: Option<String>,
    ) -> Result<Bag, CheckinError> {
        let code = match code {
            Some(c) => bag_code(&c)?,
            None => {
                let u = ulid::Ulid::new().to_string();
                format!("BAG-{}", &u[u.len() - 8..])
            }
        };
        let id = ulid::Ulid::new().to_string();
        let now = crate::clock::now_string();
        let bag = Bag {
            id: id.clone(),
            code: code.clone(),
            state: "open".into(),
            clerk_id: clerk_id.clone(),
            created_at: now.clone(),
            handover_id: None,
            parcel_count: 0,
            parcels: None,
        };
        self.db()
            .write(Durability::Full, move |tx| {
                let taken = tx
                    .prepare_cached("SELECT 1 FROM bags WHERE code = ?1 AND state = 'open'")?
                    .exists([&code])?;
                if taken {
                    return Err(CheckinError::refused(
                        "bag_exists",
                        format!("bag {code} is already open; add parcels to it"),
                    ));
                }
                tx.execute(
                    "INSERT INTO bags (id, code, state, clerk_id, created_at)
                     VALUES (?1, ?2, 'open', ?3, ?4)",
                    params![id, code, clerk_id, now],
                )?;
                Ok(())
            })
            .await?;
        Ok(bag)
    }

    /// Open bags, newest first.
    pub async fn open_bags(&self) -> Result<Vec<Bag>, CheckinError> {
        self.db()
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "{BAG_SELECT} WHERE b.state = 'open' ORDER BY b.created_at DESC"
                ))?;
                let rows = stmt.query_map([], bag_row)?;
                Ok::<_, CheckinError>(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// One bag (by id, or by the code of an open bag) with its parcels.
    pub async fn bag(&self, key: String) -> Result<Bag, CheckinError> {
        self.db()
            .read(move |c| {
                let mut bag = find_bag(c, &key)?.ok_or(CheckinError::BagNotFound(key))?;
                bag.parcels = Some(bag_parcels(c, &bag.id)?);
                Ok(bag)
            })
            .await
    }

    /// Puts an accepted parcel (by id or waybill) into an open bag.
    pub async fn bag_parcel(
        &self,
        bag_key: String,
        parcel: ParcelRef,
        clerk_id: Option<String>,
    ) -> Result<Bag, CheckinError> {
        let station = self.clone();
        let (bag, parcel) = self
            .db()
            .write(Durability::Full, move |tx| {
                let mut bag = find_bag(tx, &bag_key)?.ok_or(CheckinError::BagNotFound(bag_key))?;
                if bag.state != "open" {
                    return Err(CheckinError::refused(
                        "bag_closed",
                        format!("bag {} was already handed over", bag.code),
                    ));
                }
                let p = parcel.resolve(tx)?;
                if p.state != State::Accepted {
                    return Err(CheckinError::refused(
                        "not_baggable",
                        format!(
                            "parcel {} is {}; only accepted parcels go into a bag",
                            p.return_no, p.state
                        ),
                    ));
                }
                let current: Option<String> = tx
                    .prepare_cached("SELECT bag_id FROM bag_parcels WHERE parcel_id = ?1")?
                    .query_row([p.id.as_str()], |r| r.get(0))
                    .optional()?;
                match current {
                    Some(b) if b == bag.id => {}
                    Some(_) => {
                        return Err(CheckinError::refused(
                            "already_bagged",
                            format!("parcel {} is already in another bag", p.return_no),
                        ))
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO bag_parcels (parcel_id, bag_id, added_at) VALUES (?1, ?2, ?3)",
                            params![p.id.as_str(), bag.id, crate::clock::now_string()],
                        )?;
                        let mut data = json!({ "bag_id": bag.id });
                        if let Some(c) = &clerk_id {
                            data["clerk_id"] = json!(c);
                        }
                        outbox::append(
                            tx,
                            station.events(),
                            EventType::Bagged,
                            &p.id,
                            &p.return_no,
                            data,
                        )?;
                    }
                }
                bag.parcels = Some(bag_parcels(tx, &bag.id)?);
                bag.parcel_count = bag.parcels.as_ref().map_or(0, |p| p.len() as i64);
                Ok((bag, p))
            })
            .await?;
        self.events_committed();
        self.metrics().transition(Counted::Bagged);
        self.notify(Notice::Parcel {
            parcel_id: parcel.id,
            state: parcel.state,
        });
        Ok(bag)
    }

    /// Hands parcels (by id, waybill or bag) to a courier: all or none.
    pub async fn hand_over(
        &self,
        input: HandoverInput,
        clerk_id: Option<String>,
    ) -> Result<Handover, CheckinError> {
        let courier = bounded_text("courier", input.courier, 64)?;
        let carrier = bounded_text("carrier", input.carrier, 32)?;
        let total = input.parcel_ids.len() + input.waybill_nos.len() + input.bag_ids.len();
        if total == 0 {
            return Err(CheckinError::invalid(
                "nothing_to_hand_over",
                "name the parcels: parcel_ids, waybill_nos or bag_ids",
            ));
        }
        if total > MAX_HANDOVER {
            return Err(CheckinError::invalid(
                "too_many",
                format!("at most {MAX_HANDOVER} parcels or bags per handover"),
            ));
        }
        let mut refs = Vec::with_capacity(total);
        for raw in &input.parcel_ids {
            refs.push(ParcelRef::id(raw)?);
        }
        for raw in &input.waybill_nos {
            refs.push(ParcelRef::waybill(raw)?);
        }
        let bags = input.bag_ids;
        let station = self.clone();
        let handover = self
            .db()
            .write(Durability::Full, move |tx| {
                hand_over_tx(&station, tx, courier, carrier, clerk_id, refs, bags)
            })
            .await?;
        self.events_committed();
        for p in &handover.parcels {
            self.metrics().transition(Counted::HandedOver);
            if let Some(id) = ParcelId::parse(&p.parcel_id) {
                self.notify(Notice::Parcel {
                    parcel_id: id,
                    state: State::HandedOver,
                });
            }
        }
        Ok(handover)
    }

    /// One handover with its parcels.
    pub async fn handover(&self, id: String) -> Result<Handover, CheckinError> {
        self.db()
            .read(move |c| load_handover(c, &id)?.ok_or(CheckinError::HandoverNotFound(id)))
            .await
    }

    /// Recent handovers, newest first (without their parcel lists).
    pub async fn handovers(&self, limit: u32) -> Result<Vec<serde_json::Value>, CheckinError> {
        self.db()
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT h.id, h.courier, h.carrier, h.clerk_id, h.created_at,
                            (SELECT COUNT(*) FROM handover_parcels hp WHERE hp.handover_id = h.id)
                     FROM handovers h ORDER BY h.created_at DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit], |r| {
                    Ok(json!({
                        "id": r.get::<_, String>(0)?, "courier": r.get::<_, String>(1)?,
                        "carrier": r.get::<_, String>(2)?, "clerk_id": r.get::<_, Option<String>>(3)?,
                        "created_at": r.get::<_, String>(4)?, "parcel_count": r.get::<_, i64>(5)?,
                    }))
                })?;
                Ok::<_, CheckinError>(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// A customer's view of a return, from a return number, a return code
    /// or the receipt this station gave them.
    pub async fn progress(&self, scanned: &str) -> Result<Progress, CheckinError> {
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
                    return Err(CheckinError::refused(
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
    fn return_no_of(&self, scanned: &str) -> Result<String, CheckinError> {
        let s = scanned.trim();
        if s.starts_with("YZK1.") {
            return receipt::verify(s, &self.public_key())
                .map(|c| c.rn)
                .map_err(|_| {
                    CheckinError::invalid(
                        "invalid_receipt",
                        "this receipt was not issued by this station or is damaged",
                    )
                });
        }
        let cfg = self.config();
        code::parse(s.as_bytes(), &cfg.codes.trusted_keys, &cfg.station.id)
            .map(|p| p.return_no().to_owned())
            .map_err(|reason| {
                CheckinError::invalid(
                    "invalid_code",
                    format!("not a return number, return code or receipt ({reason})"),
                )
            })
    }

    fn committed(&self, p: &Parcel, counted: Counted) {
        self.events_committed();
        self.metrics().transition(counted);
        self.notify(Notice::Parcel {
            parcel_id: p.id.clone(),
            state: p.state,
        });
    }
}

/// A parcel named by its id or by its waybill number.
#[derive(Debug, Clone)]
pub enum ParcelRef {
    Id(ParcelId),
    Waybill(String),
}

impl ParcelRef {
    pub fn id(raw: &str) -> Result<ParcelRef, CheckinError> {
        ParcelId::parse(raw).map(ParcelRef::Id).ok_or_else(|| {
            CheckinError::invalid("invalid_parcel_id", format!("{raw:?} is not a parcel id"))
        })
    }

    pub fn waybill(raw: &str) -> Result<ParcelRef, CheckinError> {
        carrier::normalise_waybill(raw)
            .map(ParcelRef::Waybill)
            .ok_or_else(|| {
                CheckinError::invalid(
                    "invalid_waybill",
                    format!("waybill_no {raw:?} must be 8-32 letters or digits"),
                )
            })
    }

    fn resolve(&self, conn: &Connection) -> Result<Parcel, CheckinError> {
        match self {
            ParcelRef::Id(id) => {
                store::get(conn, id)?.ok_or_else(|| CheckinError::NotFound(id.clone()))
            }
            ParcelRef::Waybill(wb) => {
                let id: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM parcels WHERE waybill_no = ?1
                         AND state IN ('accepted', 'handed_over', 'held')",
                    )?
                    .query_row([wb], |r| r.get(0))
                    .optional()?;
                let id = id.and_then(|i| ParcelId::parse(&i)).ok_or_else(|| {
                    CheckinError::refused(
                        "unknown_waybill",
                        format!("no parcel with waybill {wb} is at this station"),
                    )
                })?;
                store::get(conn, &id)?.ok_or(CheckinError::NotFound(id))
            }
        }
    }
}

fn hand_over_tx(
    station: &Station,
    tx: &Transaction<'_>,
    courier: String,
    carrier: String,
    clerk_id: Option<String>,
    refs: Vec<ParcelRef>,
    bag_keys: Vec<String>,
) -> Result<Handover, CheckinError> {
    // (parcel, the bag it leaves in)
    let mut leaving: Vec<(Parcel, Option<String>)> = Vec::new();
    let mut bags = Vec::new();
    for key in bag_keys {
        let bag = find_bag(tx, &key)?.ok_or(CheckinError::BagNotFound(key))?;
        if bag.state != "open" {
            return Err(CheckinError::refused(
                "bag_closed",
                format!("bag {} was already handed over", bag.code),
            ));
        }
        let members = bag_parcels(tx, &bag.id)?;
        if members.is_empty() {
            return Err(CheckinError::refused(
                "bag_empty",
                format!("bag {} is empty", bag.code),
            ));
        }
        for m in members {
            let id = ParcelId::parse(&m.parcel_id)
                .ok_or_else(|| CheckinError::Internal(format!("bad parcel id {}", m.parcel_id)))?;
            let p = store::get(tx, &id)?.ok_or(CheckinError::NotFound(id))?;
            leaving.push((p, Some(bag.id.clone())));
        }
        bags.push(bag);
    }
    for r in &refs {
        let p = r.resolve(tx)?;
        let in_bag: Option<String> = tx
            .prepare_cached(
                "SELECT b.code FROM bag_parcels bp JOIN bags b ON b.id = bp.bag_id
                 WHERE bp.parcel_id = ?1 AND b.state = 'open'",
            )?
            .query_row([p.id.as_str()], |r| r.get(0))
            .optional()?;
        let via_bag = leaving.iter().any(|(q, _)| q.id == p.id);
        if let (Some(code), false) = (in_bag, via_bag) {
            return Err(CheckinError::refused(
                "in_bag",
                format!(
                    "parcel {} is in bag {code}; hand over the whole bag",
                    p.return_no
                ),
            ));
        }
        if !via_bag {
            leaving.push((p, None));
        }
    }
    let id = ulid::Ulid::new().to_string();
    let now = crate::clock::now_string();
    tx.execute(
        "INSERT INTO handovers (id, courier, carrier, clerk_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, courier, carrier, clerk_id, now],
    )?;
    // The courier's slip prints if and only if the handover commits.
    if station.prints(crate::config::AutoPrint::Handover) {
        crate::print::store::enqueue(tx, crate::print::JobKind::Handover, &id)?;
    }
    let mut parcels = Vec::with_capacity(leaving.len());
    for (p, bag_id) in leaving {
        if parcels
            .iter()
            .any(|h: &HandedParcel| h.parcel_id == p.id.as_str())
        {
            continue;
        }
        let (return_no, from) = (p.return_no.clone(), p.state);
        let after = store::transition_from(tx, p, Action::HandOver, Changes::default()).map_err(
            |e| match e {
                store::StoreError::Transition(_) if from == State::HandedOver => {
                    CheckinError::refused(
                        "already_handed_over",
                        format!("parcel {return_no} was already handed over"),
                    )
                }
                store::StoreError::Transition(_) => CheckinError::refused(
                    "not_handable",
                    format!("parcel {return_no} is {from}; only accepted parcels are handed over"),
                ),
                other => other.into(),
            },
        )?;
        tx.prepare_cached(
            "INSERT INTO handover_parcels (parcel_id, handover_id, bag_id) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![after.id.as_str(), id, bag_id])?;
        let mut data = json!({
            "handover_id": id, "courier": courier, "carrier": carrier,
            "waybill_no": after.waybill_no,
        });
        if let Some(b) = &bag_id {
            data["bag_id"] = json!(b);
        }
        outbox::append(
            tx,
            station.events(),
            EventType::HandedOver,
            &after.id,
            &after.return_no,
            data,
        )?;
        parcels.push(HandedParcel {
            parcel_id: after.id.to_string(),
            return_no: after.return_no,
            waybill_no: after.waybill_no,
            state: after.state.as_str().to_owned(),
            bag_id,
        });
    }
    for bag in &bags {
        tx.execute(
            "UPDATE bags SET state = 'handed_over', handover_id = ?2 WHERE id = ?1",
            params![bag.id, id],
        )?;
    }
    Ok(Handover {
        id,
        courier,
        carrier,
        clerk_id,
        created_at: now,
        parcels,
    })
}

/// A bag's barcode: 1-40 of A-Z, 0-9, '-', '_' (upper-cased).
fn bag_code(raw: &str) -> Result<String, CheckinError> {
    let c = raw.trim().to_ascii_uppercase();
    if (1..=40).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(c)
    } else {
        Err(CheckinError::invalid(
            "invalid_bag_code",
            format!("bag code {raw:?} must be 1-40 letters, digits, '-' or '_'"),
        ))
    }
}

const BAG_SELECT: &str = "SELECT b.id, b.code, b.state, b.clerk_id, b.created_at, b.handover_id,
    (SELECT COUNT(*) FROM bag_parcels bp WHERE bp.bag_id = b.id) FROM bags b";

fn bag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bag> {
    Ok(Bag {
        id: r.get(0)?,
        code: r.get(1)?,
        state: r.get(2)?,
        clerk_id: r.get(3)?,
        created_at: r.get(4)?,
        handover_id: r.get(5)?,
        parcel_count: r.get(6)?,
        parcels: None,
    })
}

/// A bag by id, or an open bag by code (upper-cased).
fn find_bag(conn: &Connection, key: &str) -> Result<Option<Bag>, CheckinError> {
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

fn bag_parcels(conn: &Connection, bag_id: &str) -> Result<Vec<HandedParcel>, CheckinError> {
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

fn load_handover(conn: &Connection, id: &str) -> Result<Option<Handover>, CheckinError> {
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
