//! Parcels leaving the station: to a courier (SPEC §2.3, all or none, bags
//! whole), or a held parcel back to its customer (§2.4).

use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

use super::store::{self, ParcelRef};
use super::{Bag, BagState, CounterError};
use crate::checkin::input::bounded_text;
use crate::custody;
use crate::db::Durability;
use crate::metrics::Counted;
use crate::outbox::{self, Event};
use crate::parcel::store::{self as parcels, Changes, Parcel, StoreError};
use crate::parcel::{Action, ParcelId, State};
use crate::station::{Notice, Station};

/// Most parcels one handover takes.
const MAX_HANDOVER: usize = 2000;

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
    /// The signed `YZH1` token of the handover (on the courier's slip as a
    /// QR code; `custody`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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

/// A parcel on its way out, and the bag it leaves in.
type Leaving = (Parcel, Option<String>);

impl Station {
    /// Hands parcels (by id, waybill or bag) to a courier: all or none.
    pub async fn record_handover(
        &self,
        input: HandoverInput,
        clerk_id: Option<String>,
    ) -> Result<Handover, CounterError> {
        let courier = bounded_text("courier", input.courier, 64)?;
        let carrier = bounded_text("carrier", input.carrier, 32)?;
        let total = input.parcel_ids.len() + input.waybill_nos.len() + input.bag_ids.len();
        if total == 0 {
            return Err(CounterError::invalid(
                "nothing_to_hand_over",
                "name the parcels: parcel_ids, waybill_nos or bag_ids",
            ));
        }
        if total > MAX_HANDOVER {
            return Err(CounterError::invalid(
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
        let bag_keys = input.bag_ids;
        let head = Handover {
            id: ulid::Ulid::new().to_string(),
            courier,
            carrier,
            clerk_id,
            created_at: crate::clock::now_string(),
            parcels: Vec::new(),
            token: None,
        };
        let station = self.clone();
        let handover = self
            .db()
            .write(Durability::Full, move |tx| {
                hand_over_tx(&station, tx, head, &refs, bag_keys)
            })
            .await?;
        self.events_committed();
        let handover = self.signed(handover);
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
    pub async fn find_handover(&self, id: String) -> Result<Handover, CounterError> {
        let h = self
            .db()
            .read(move |c| store::load_handover(c, &id)?.ok_or(CounterError::HandoverNotFound(id)))
            .await?;
        Ok(self.signed(h))
    }

    /// The handover with its `YZH1` token. Signatures are deterministic:
    /// the same handover always gets the same token, so nothing but the
    /// handover's rows is stored.
    fn signed(&self, mut h: Handover) -> Handover {
        let cfg = self.config();
        let waybills = h
            .parcels
            .iter()
            .map(|p| p.waybill_no.clone().unwrap_or_default())
            .collect();
        let claims = custody::HandoverClaims::new(
            &h.id,
            (&cfg.station.id, &cfg.station.device_id),
            (&h.courier, &h.carrier),
            &h.created_at,
            waybills,
        );
        h.token = Some(custody::issue_handover(&claims, self.signing_key()));
        h
    }

    /// Recent handovers, newest first (without their parcel lists).
    pub async fn recent_handovers(
        &self,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, CounterError> {
        self.db()
            .read(move |c| store::recent_handovers(c, limit))
            .await
    }

    /// A clerk gives a held parcel back: `held` → `returned_to_customer`.
    /// It leaves any bag it was in.
    pub async fn return_to_customer(
        &self,
        id: &ParcelId,
        clerk_id: Option<String>,
    ) -> Result<Parcel, CounterError> {
        let station = self.clone();
        let id = id.clone();
        let parcel = self
            .db()
            .write(Durability::Full, move |tx| {
                let changes = Changes {
                    clerk_id: clerk_id.clone(),
                    ..Changes::default()
                };
                let p = parcels::transition(tx, &id, Action::ReturnToCustomer, changes)?;
                store::remove_from_bags(tx, &id)?;
                let event = Event::ReturnedToCustomer { clerk_id };
                outbox::append(tx, station.events(), &event, &id, &p.return_no)?;
                Ok::<_, CounterError>(p)
            })
            .await?;
        self.events_committed();
        self.metrics().transition(Counted::ReturnedToCustomer);
        self.notify(Notice::Parcel {
            parcel_id: parcel.id.clone(),
            state: parcel.state,
        });
        Ok(parcel)
    }
}

/// The handover in one transaction: gather the bags' parcels and the named
/// ones, record the handover (and its slip), move each parcel, close the
/// bags.
fn hand_over_tx(
    station: &Station,
    tx: &Transaction<'_>,
    mut handover: Handover,
    refs: &[ParcelRef],
    bag_keys: Vec<String>,
) -> Result<Handover, CounterError> {
    let (bags, mut leaving) = bags_leaving(tx, bag_keys)?;
    named_leaving(tx, refs, &mut leaving)?;
    store::insert_handover(tx, &handover)?;
    // The courier's slip prints if and only if the handover commits.
    if station.prints(crate::config::AutoPrint::Handover) {
        crate::print::store::enqueue(tx, crate::print::JobKind::Handover, &handover.id)?;
    }
    for (p, bag_id) in leaving {
        if handover
            .parcels
            .iter()
            .any(|h| h.parcel_id == p.id.as_str())
        {
            continue;
        }
        let handed = hand_over_one(station, tx, &handover, p, bag_id)?;
        handover.parcels.push(handed);
    }
    for bag in &bags {
        store::close_bag(tx, &bag.id, &handover.id)?;
    }
    Ok(handover)
}

/// The bags named, each open and not empty, and their parcels.
fn bags_leaving(
    tx: &Transaction<'_>,
    bag_keys: Vec<String>,
) -> Result<(Vec<Bag>, Vec<Leaving>), CounterError> {
    let mut leaving = Vec::new();
    let mut bags = Vec::new();
    for key in bag_keys {
        let bag = store::find_bag(tx, &key)?.ok_or(CounterError::BagNotFound(key))?;
        if bag.state != BagState::Open {
            return Err(CounterError::refused(
                "bag_closed",
                format!("bag {} was already handed over", bag.code),
            ));
        }
        let members = store::bag_parcels(tx, &bag.id)?;
        if members.is_empty() {
            return Err(CounterError::refused(
                "bag_empty",
                format!("bag {} is empty", bag.code),
            ));
        }
        for m in members {
            let id = ParcelId::parse(&m.parcel_id)
                .ok_or_else(|| CounterError::Corrupt(m.parcel_id.clone()))?;
            let p = parcels::get(tx, &id)?.ok_or(CounterError::ParcelNotFound(id))?;
            leaving.push((p, Some(bag.id.clone())));
        }
        bags.push(bag);
    }
    Ok((bags, leaving))
}

/// Adds the parcels named by id or waybill; one in an open bag leaves only
/// with its bag.
fn named_leaving(
    tx: &Transaction<'_>,
    refs: &[ParcelRef],
    leaving: &mut Vec<Leaving>,
) -> Result<(), CounterError> {
    for r in refs {
        let p = r.resolve(tx)?;
        let via_bag = leaving.iter().any(|(q, _)| q.id == p.id);
        if let (Some(code), false) = (store::open_bag_of(tx, &p.id)?, via_bag) {
            return Err(CounterError::refused(
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
    Ok(())
}

/// One parcel: `accepted` → `handed_over`, listed in the handover, with its
/// event.
fn hand_over_one(
    station: &Station,
    tx: &Transaction<'_>,
    handover: &Handover,
    p: Parcel,
    bag_id: Option<String>,
) -> Result<HandedParcel, CounterError> {
    let (return_no, from) = (p.return_no.clone(), p.state);
    let after = parcels::transition_from(tx, p, Action::HandOver, Changes::default()).map_err(
        |e| match e {
            StoreError::Transition(_) if from == State::HandedOver => CounterError::refused(
                "already_handed_over",
                format!("parcel {return_no} was already handed over"),
            ),
            StoreError::Transition(_) => CounterError::refused(
                "not_handable",
                format!("parcel {return_no} is {from}; only accepted parcels are handed over"),
            ),
            other => other.into(),
        },
    )?;
    store::add_handed(tx, &after.id, &handover.id, bag_id.as_deref())?;
    let event = Event::HandedOver {
        handover_id: handover.id.clone(),
        courier: handover.courier.clone(),
        carrier: handover.carrier.clone(),
        waybill_no: after.waybill_no.clone(),
        bag_id: bag_id.clone(),
    };
    outbox::append(tx, station.events(), &event, &after.id, &after.return_no)?;
    Ok(HandedParcel {
        parcel_id: after.id.to_string(),
        return_no: after.return_no,
        waybill_no: after.waybill_no,
        state: after.state.as_str().to_owned(),
        bag_id,
    })
}
