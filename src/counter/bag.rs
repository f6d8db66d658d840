//! Consolidation bags (SPEC §2.3): opened under a barcode, filled with
//! accepted parcels, handed over whole.

use serde::Serialize;

use super::store::{self, ParcelRef};
use super::{CounterError, HandedParcel};
use crate::db::Durability;
use crate::metrics::Counted;
use crate::outbox::{self, Event};
use crate::parcel::State;
use crate::station::{Notice, Station};

/// A consolidation bag or tote.
#[derive(Debug, Clone, Serialize)]
pub struct Bag {
    pub id: String,
    pub code: String,
    pub state: BagState,
    pub clerk_id: Option<String>,
    pub created_at: String,
    pub handover_id: Option<String>,
    pub parcel_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parcels: Option<Vec<HandedParcel>>,
}

/// Where a bag is: at the counter taking parcels, or gone with a courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BagState {
    Open,
    HandedOver,
}

impl BagState {
    pub fn as_str(self) -> &'static str {
        match self {
            BagState::Open => "open",
            BagState::HandedOver => "handed_over",
        }
    }

    /// The state as stored; `None` for anything else.
    pub fn parse(s: &str) -> Option<BagState> {
        [BagState::Open, BagState::HandedOver]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

impl Station {
    /// Opens a bag under its barcode (a generated one if `code` is `None`).
    pub async fn open_bag(
        &self,
        code: Option<String>,
        clerk_id: Option<String>,
    ) -> Result<Bag, CounterError> {
        let code = match code {
            Some(c) => bag_code(&c)?,
            None => {
                let u = ulid::Ulid::new().to_string();
                format!("BAG-{}", &u[u.len() - 8..])
            }
        };
        let bag = Bag {
            id: ulid::Ulid::new().to_string(),
            code,
            state: BagState::Open,
            clerk_id,
            created_at: crate::clock::now_string(),
            handover_id: None,
            parcel_count: 0,
            parcels: None,
        };
        let row = bag.clone();
        self.db()
            .write(Durability::Full, move |tx| {
                if store::open_bag_exists(tx, &row.code)? {
                    return Err(CounterError::refused(
                        "bag_exists",
                        format!("bag {} is already open; add parcels to it", row.code),
                    ));
                }
                store::insert_bag(tx, &row)
            })
            .await?;
        Ok(bag)
    }

    /// Open bags, newest first.
    pub async fn open_bags(&self) -> Result<Vec<Bag>, CounterError> {
        self.db().read(store::open_bags).await
    }

    /// One bag (by id, or by the code of an open bag) with its parcels.
    pub async fn bag(&self, key: String) -> Result<Bag, CounterError> {
        self.db()
            .read(move |c| {
                let mut bag = store::find_bag(c, &key)?.ok_or(CounterError::BagNotFound(key))?;
                bag.parcels = Some(store::bag_parcels(c, &bag.id)?);
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
    ) -> Result<Bag, CounterError> {
        let station = self.clone();
        let (bag, parcel) = self
            .db()
            .write(Durability::Full, move |tx| {
                let mut bag =
                    store::find_bag(tx, &bag_key)?.ok_or(CounterError::BagNotFound(bag_key))?;
                if bag.state != BagState::Open {
                    return Err(CounterError::refused(
                        "bag_closed",
                        format!("bag {} was already handed over", bag.code),
                    ));
                }
                let p = parcel.resolve(tx)?;
                if p.state != State::Accepted {
                    return Err(CounterError::refused(
                        "not_baggable",
                        format!(
                            "parcel {} is {}; only accepted parcels go into a bag",
                            p.return_no, p.state
                        ),
                    ));
                }
                match store::bag_of(tx, &p.id)? {
                    Some(b) if b == bag.id => {}
                    Some(_) => {
                        return Err(CounterError::refused(
                            "already_bagged",
                            format!("parcel {} is already in another bag", p.return_no),
                        ));
                    }
                    None => {
                        store::add_to_bag(tx, &p.id, &bag.id)?;
                        let event = Event::Bagged {
                            bag_id: bag.id.clone(),
                            clerk_id: clerk_id.clone(),
                        };
                        outbox::append(tx, station.events(), &event, &p.id, &p.return_no)?;
                    }
                }
                let parcels = store::bag_parcels(tx, &bag.id)?;
                bag.parcel_count = parcels.len() as i64;
                bag.parcels = Some(parcels);
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
}

/// A bag's barcode: 1-40 of A-Z, 0-9, '-', '_' (upper-cased).
fn bag_code(raw: &str) -> Result<String, CounterError> {
    let c = raw.trim().to_ascii_uppercase();
    if (1..=40).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(c)
    } else {
        Err(CounterError::invalid(
            "invalid_bag_code",
            format!("bag code {raw:?} must be 1-40 letters, digits, '-' or '_'"),
        ))
    }
}
