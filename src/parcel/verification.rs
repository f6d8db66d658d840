//! What the clerk found at the counter against the merchant's rules (SPEC
//! §2.5): the `verification` block a parcel keeps and `parcel.accepted`
//! carries. The rules are applied in `checkin::inspect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::{Freight, ReturnType};

/// The clerk's answer to one line of the checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Yes,
    No,
    /// Not applicable.
    Na,
}

/// Something the platform's refund team should look at; the parcel was
/// taken all the same.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Flag {
    /// A barcode scanned that is not one of the return's items.
    UnexpectedItem,
    /// Fewer of an item than the return lists.
    MissingItem,
    /// A check the merchant does not require was answered "no".
    CheckFailed,
    /// The weight is outside the tolerance (or none was given).
    WeightMismatch,
}

/// What the clerk found, as `parcel.accepted` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub return_type: Option<ReturnType>,
    pub items: Vec<ItemFound>,
    pub checks: BTreeMap<String, Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<Freight>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<WeightCheck>,
    pub flags: Vec<Flag>,
    /// The barcodes behind `unexpected_item`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexpected: Vec<String>,
}

/// One item of the return: how many were expected and found (`found` is
/// absent when the clerk neither scanned nor ticked the items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFound {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    pub expected: u32,
    pub found: Option<u32>,
}

/// The weight against the merchant's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightCheck {
    pub expected_g: i64,
    pub measured_g: Option<i64>,
    pub ok: bool,
}
