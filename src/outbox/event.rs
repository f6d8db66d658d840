//! The events of SPEC §5, typed: one variant per `type`, its fields the
//! `data` docs/PROTOCOL.md §1 lists. Serialised adjacently tagged
//! (`{"type": …, "data": {…}}`); `tests` below pin each one's JSON.

use serde::{Deserialize, Serialize};

use crate::parcel::store::{Parcel, TickedItem};
use crate::parcel::verification::Verification;
use crate::parcel::{Channel, Condition};
use crate::photo::Photo;

/// An event's type and data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// Dropped off at the kiosk by the customer (self-service).
    #[serde(rename = "parcel.dropped")]
    #[strum(serialize = "parcel.dropped")]
    Dropped {
        channel: Channel,
        photos: Vec<Photo>,
        receipt_id: Option<String>,
        provisional: bool,
    },
    /// Accepted at the counter with a waybill.
    #[serde(rename = "parcel.accepted")]
    #[strum(serialize = "parcel.accepted")]
    Accepted {
        waybill_no: Option<String>,
        carrier: Option<String>,
        photos: Vec<Photo>,
        condition: Condition,
        channel: Channel,
        provisional: bool,
        receipt_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<Vec<TickedItem>>,
        /// Only with `items`: whether fewer came than expected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partial: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight_g: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clerk_id: Option<String>,
        /// What the clerk found against the merchant's rules (SPEC §2.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification: Option<Box<Verification>>,
        /// `pool` when the waybill number came from the station's pool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waybill_source: Option<String>,
    },
    /// A photo added to a parcel already in custody.
    #[serde(rename = "parcel.photo_added")]
    #[strum(serialize = "parcel.photo_added")]
    PhotoAdded { photo: Photo },
    /// A clerk refused the parcel.
    #[serde(rename = "parcel.rejected")]
    #[strum(serialize = "parcel.rejected")]
    Rejected {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clerk_id: Option<String>,
    },
    /// Gone with a courier.
    #[serde(rename = "parcel.handed_over")]
    #[strum(serialize = "parcel.handed_over")]
    HandedOver {
        handover_id: String,
        courier: String,
        carrier: String,
        waybill_no: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bag_id: Option<String>,
    },
    /// Put into a consolidation bag.
    #[serde(rename = "parcel.bagged")]
    #[strum(serialize = "parcel.bagged")]
    Bagged {
        bag_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clerk_id: Option<String>,
    },
    /// Held at the station on the platform's word.
    #[serde(rename = "parcel.held")]
    #[strum(serialize = "parcel.held")]
    Held { reason: String },
    /// A held parcel given back to its customer.
    #[serde(rename = "parcel.returned_to_customer")]
    #[strum(serialize = "parcel.returned_to_customer")]
    ReturnedToCustomer { clerk_id: Option<String> },
}

impl Event {
    /// `parcel.dropped` for a parcel that just entered custody at the kiosk.
    pub fn dropped(p: &Parcel) -> Event {
        Event::Dropped {
            channel: p.channel,
            photos: p.photos.clone(),
            receipt_id: p.receipt_id.clone(),
            provisional: p.provisional,
        }
    }

    /// `parcel.accepted` for a parcel a clerk just accepted.
    pub fn accepted(p: &Parcel) -> Event {
        Event::Accepted {
            waybill_no: p.waybill_no.clone(),
            carrier: p.carrier.clone(),
            photos: p.photos.clone(),
            condition: p.condition.unwrap_or_default(),
            channel: p.channel,
            provisional: p.provisional,
            receipt_id: p.receipt_id.clone(),
            partial: p.items.as_ref().map(|_| p.partial),
            items: p.items.clone(),
            weight_g: p.weight_g,
            note: p.note.clone(),
            clerk_id: p.clerk_id.clone(),
            verification: p.verification.clone().map(Box::new),
            waybill_source: p.waybill_source.clone(),
        }
    }

    /// The wire name of its type (`parcel.accepted`…).
    pub fn kind(&self) -> &'static str {
        self.into()
    }

    /// Its `data` object, as the envelope carries it.
    pub fn data(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut tagged = serde_json::to_value(self)?;
        Ok(tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parcel::verification::{Answer, Flag, ItemFound, WeightCheck};
    use crate::photo::Kind;

    fn photo() -> Photo {
        Photo {
            sha256: "9f2c".into(),
            bytes: 48213,
            width: 1600,
            height: 1200,
            kind: Kind::Label,
        }
    }

    /// Each type's JSON exactly as docs/PROTOCOL.md §1 has it (keys in
    /// the order the envelope's `data` has always had them).
    #[test]
    fn every_event_type_keeps_its_wire_format() {
        // The optional fields absent, then all there.
        let accepted = |full: bool| Event::Accepted {
            waybill_no: Some("SF1234567890123".into()),
            carrier: Some("SF".into()),
            photos: vec![photo()],
            condition: Condition::Intact,
            channel: Channel::Clerk,
            provisional: false,
            receipt_id: Some("01JD".into()),
            items: full.then(|| {
                vec![TickedItem {
                    sku: "SKU-1".into(),
                    name: "Mug".into(),
                    qty_expected: 2,
                    qty: 1,
                }]
            }),
            partial: full.then_some(true),
            weight_g: full.then_some(850),
            note: full.then(|| "box dented".into()),
            clerk_id: full.then(|| "li".into()),
            verification: full.then(|| {
                Box::new(Verification {
                    return_type: Some(crate::manifest::ReturnType::Return),
                    items: vec![ItemFound {
                        sku: "SKU-1".into(),
                        gtin: Some("6901234567892".into()),
                        expected: 2,
                        found: Some(1),
                    }],
                    checks: [("tags_attached".to_owned(), Answer::Yes)].into(),
                    freight: Some(crate::manifest::Freight::Prepaid),
                    weight: Some(WeightCheck {
                        expected_g: 900,
                        measured_g: Some(850),
                        ok: true,
                    }),
                    flags: vec![Flag::MissingItem],
                    unexpected: Vec::new(),
                })
            }),
            waybill_source: full.then(|| "pool".into()),
        };
        let (accepted_min, accepted_full) = (accepted(false), accepted(true));
        let photo_json =
            r#"{"bytes":48213,"height":1200,"kind":"label","sha256":"9f2c","width":1600}"#;
        let cases = [
            (
                Event::Dropped {
                    channel: Channel::SelfService,
                    photos: vec![photo()],
                    receipt_id: None,
                    provisional: true,
                },
                format!(
                    r#"{{"data":{{"channel":"self","photos":[{photo_json}],"provisional":true,"receipt_id":null}},"type":"parcel.dropped"}}"#
                ),
            ),
            (
                accepted_min,
                format!(
                    r#"{{"data":{{"carrier":"SF","channel":"clerk","condition":"intact","photos":[{photo_json}],"provisional":false,"receipt_id":"01JD","waybill_no":"SF1234567890123"}},"type":"parcel.accepted"}}"#
                ),
            ),
            (
                accepted_full,
                format!(
                    r#"{{"data":{{"carrier":"SF","channel":"clerk","clerk_id":"li","condition":"intact","items":[{{"name":"Mug","qty":1,"qty_expected":2,"sku":"SKU-1"}}],"note":"box dented","partial":true,"photos":[{photo_json}],"provisional":false,"receipt_id":"01JD","verification":{{"checks":{{"tags_attached":"yes"}},"flags":["missing_item"],"freight":"prepaid","items":[{{"expected":2,"found":1,"gtin":"6901234567892","sku":"SKU-1"}}],"type":"return","weight":{{"expected_g":900,"measured_g":850,"ok":true}}}},"waybill_no":"SF1234567890123","waybill_source":"pool","weight_g":850}},"type":"parcel.accepted"}}"#
                ),
            ),
            (
                Event::PhotoAdded { photo: photo() },
                format!(r#"{{"data":{{"photo":{photo_json}}},"type":"parcel.photo_added"}}"#),
            ),
            (
                Event::Rejected {
                    reason: "torn".into(),
                    clerk_id: Some("li".into()),
                },
                r#"{"data":{"clerk_id":"li","reason":"torn"},"type":"parcel.rejected"}"#.into(),
            ),
            (
                Event::HandedOver {
                    handover_id: "H1".into(),
                    courier: "Wang".into(),
                    carrier: "SF".into(),
                    waybill_no: None,
                    bag_id: Some("B1".into()),
                },
                r#"{"data":{"bag_id":"B1","carrier":"SF","courier":"Wang","handover_id":"H1","waybill_no":null},"type":"parcel.handed_over"}"#.into(),
            ),
            (
                Event::Bagged {
                    bag_id: "B1".into(),
                    clerk_id: None,
                },
                r#"{"data":{"bag_id":"B1"},"type":"parcel.bagged"}"#.into(),
            ),
            (
                Event::Held {
                    reason: "return_cancelled".into(),
                },
                r#"{"data":{"reason":"return_cancelled"},"type":"parcel.held"}"#.into(),
            ),
            (
                Event::ReturnedToCustomer { clerk_id: None },
                r#"{"data":{"clerk_id":null},"type":"parcel.returned_to_customer"}"#.into(),
            ),
        ];
        for (event, json) in cases {
            // Through a Value, as the envelope is built: keys sorted.
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), json, "{event:?}");
            assert_eq!(value["type"], event.kind());
            assert_eq!(event.data().unwrap(), value["data"]);
            let back: Event = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }
}
