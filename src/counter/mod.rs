//! The counter after check-in (SPEC §2.3, §2.4, §6.4): consolidation into
//! bags ([`bag`]), courier handovers and giving a held parcel back
//! ([`handover`]), and the progress a customer sees ([`progress`]); their
//! SQL is in [`store`].
//!
//! # Invariants
//! - Each operation is one fsync'd transaction: every parcel it names moves
//!   (with one event each) or none does, and the answer names the parcel
//!   that stopped it.
//! - A parcel is handed over once (its row in `handover_parcels` is keyed
//!   by parcel) and sits in at most one bag.
//! - A parcel in an open bag leaves with its bag: handing it over alone is
//!   refused, so the platform's picture of a bag is never wrong.

pub mod bag;
pub mod handover;
pub mod progress;
pub mod store;

pub use bag::{Bag, BagState};
pub use handover::{HandedParcel, Handover, HandoverInput};
pub use progress::{ParcelProgress, PlatformProgress, Progress};
pub use store::ParcelRef;

use crate::checkin::input::InvalidField;
use crate::db::DbError;
use crate::parcel::store::StoreError;
use crate::parcel::{ParcelId, TransitionError};

/// A counter operation that did not happen. Every variant but `Db` and
/// `Corrupt` is the caller's to fix (a 4xx at the API).
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("no parcel {0}")]
    ParcelNotFound(ParcelId),
    #[error("no bag {0}")]
    BagNotFound(String),
    #[error("no handover {0}")]
    HandoverNotFound(String),
    /// Wrong whatever the station's state (a 422 with `code`).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Well-formed, but the station's state refuses it (a 409 with `code`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(
        "parcel {0} was changed by another request at the same moment; reload it and try again"
    )]
    Conflict(ParcelId),
    /// A row the station wrote itself does not read back.
    #[error("the database holds a damaged parcel id {0:?}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CounterError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> CounterError {
        CounterError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> CounterError {
        CounterError::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for CounterError {
    fn from(e: rusqlite::Error) -> Self {
        CounterError::Db(e.into())
    }
}

impl From<InvalidField> for CounterError {
    fn from(e: InvalidField) -> Self {
        CounterError::invalid("invalid_field", e.to_string())
    }
}

impl From<StoreError> for CounterError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => CounterError::ParcelNotFound(id),
            StoreError::Transition(t) => CounterError::Transition(t),
            StoreError::Conflict(id) => CounterError::Conflict(id),
            e @ StoreError::ReturnInCustody(_) => {
                CounterError::refused("already_dropped_off", e.to_string())
            }
            e @ StoreError::WaybillInCustody(_) => {
                CounterError::refused("waybill_in_custody", e.to_string())
            }
            StoreError::Db(e) => CounterError::Db(e),
        }
    }
}
