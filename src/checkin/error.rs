//! What can go wrong on the check-in path, and how bad it is.

use crate::db::DbError;
use crate::parcel::{ParcelId, State, TransitionError};
use crate::photo::PhotoError;
use crate::receipt::RenderError;

/// A check-in step that did not happen. Every variant but `Db`, `Render`
/// and `Internal` is the caller's to fix (a 4xx at the API).
#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error("no parcel {0}")]
    NotFound(ParcelId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(
        "parcel {0} was changed by another request at the same moment; reload it and try again"
    )]
    Conflict(ParcelId),
    #[error("return {0} already has a parcel in custody")]
    AlreadyDroppedOff(String),
    #[error("waybill {0} is already in custody")]
    WaybillInCustody(String),
    #[error("take at least {need} photo(s) first (this parcel has {have})")]
    PhotosRequired { have: usize, need: usize },
    #[error("only self-service drafts are dropped off; a clerk accepts the parcel instead")]
    WrongChannel,
    #[error("photos cannot be added to a parcel that is {0}")]
    PhotoNotAllowed(State),
    #[error("a parcel that is {0} has no receipt")]
    NoReceipt(State),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The request is well-formed but the station's state refuses it
    /// (a 409 with `code`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("this needs a clerk: log in with your PIN")]
    ClerkOnly,
    #[error("{max} customers are already checking in at the kiosk: finish one, or ask a clerk")]
    TooManyDrafts { max: i64 },
    #[error("{}", if *.found == 0 { "no QR code or barcode found in the picture: hold the code flat, in the light, filling a third of the frame".to_owned() } else { format!("{found} code(s) found in the picture, but none is a return code", found = .found) })]
    NoCode { found: usize },
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(transparent)]
    Slot(#[from] crate::photo::SlotError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for CheckinError {
    fn from(e: rusqlite::Error) -> Self {
        CheckinError::Db(e.into())
    }
}

impl CheckinError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> CheckinError {
        CheckinError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> CheckinError {
        CheckinError::Invalid {
            code,
            message: message.into(),
        }
    }
}
