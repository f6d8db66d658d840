//! Parcels and their life cycle (SPEC §3).
//!
//! [`State::apply`] is the one place that decides which transitions exist;
//! every state change in the store goes through it, so an illegal transition
//! is a typed [`TransitionError`] whatever path asked for it.
//!
//! ```text
//!  scan ok ──> draft ──accept──> accepted ──handover──> handed_over
//!                │  └──self drop──> dropped ──accept──┘
//!                └──reject──> rejected
//!  accepted/dropped ──platform cancel──> held ──give back──> returned_to_customer
//! ```

pub mod store;
pub mod verification;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;

/// A parcel's id: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParcelId(String);

impl ParcelId {
    pub fn new() -> ParcelId {
        ParcelId(ulid::Ulid::new().to_string())
    }

    /// Parses an id from user input; only a well-formed ULID is an id.
    pub fn parse(s: &str) -> Option<ParcelId> {
        ulid::Ulid::from_string(s)
            .ok()
            .map(|u| ParcelId(u.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ParcelId {
    fn default() -> Self {
        ParcelId::new()
    }
}

impl fmt::Display for ParcelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a parcel is in its life. Its names (JSON, SQL, metrics labels)
/// and the list of states come from the derives.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum State {
    Draft,
    Dropped,
    Accepted,
    Rejected,
    HandedOver,
    Held,
    ReturnedToCustomer,
}

/// Something that happens to a parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum Action {
    /// The customer drops it in the bin (self-service).
    Drop,
    /// A clerk accepts it with its waybill.
    Accept,
    /// A clerk rejects it.
    Reject,
    /// It leaves with a courier.
    HandOver,
    /// The platform cancelled its return (or disowned a provisional one).
    Hold,
    /// A clerk gives a held parcel back to the customer.
    ReturnToCustomer,
}

/// The transition does not exist in SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a parcel that is {from} cannot be {}", action.past_tense())]
pub struct TransitionError {
    pub from: State,
    pub action: Action,
}

impl State {
    /// The state after `action`, or why it cannot happen.
    pub fn apply(self, action: Action) -> Result<State, TransitionError> {
        use Action as A;
        use State as S;
        match (self, action) {
            (S::Draft, A::Drop) => Ok(S::Dropped),
            (S::Draft | S::Dropped, A::Accept) => Ok(S::Accepted),
            (S::Draft, A::Reject) => Ok(S::Rejected),
            (S::Accepted, A::HandOver) => Ok(S::HandedOver),
            (S::Dropped | S::Accepted, A::Hold) => Ok(S::Held),
            (S::Held, A::ReturnToCustomer) => Ok(S::ReturnedToCustomer),
            (from, action) => Err(TransitionError { from, action }),
        }
    }

    /// The station has the parcel and answers for it.
    pub fn in_custody(self) -> bool {
        matches!(self, State::Dropped | State::Accepted | State::Held)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown state {s:?}; expected one of {}", state_names()))
    }
}

/// The state names, comma-separated, for error messages and help.
pub fn state_names() -> String {
    State::iter()
        .map(State::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Action {
    fn past_tense(self) -> &'static str {
        match self {
            Action::Drop => "dropped off",
            Action::Accept => "accepted",
            Action::Reject => "rejected",
            Action::HandOver => "handed over",
            Action::Hold => "held",
            Action::ReturnToCustomer => "returned to the customer",
        }
    }
}

/// How the parcel reached the station.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
pub enum Channel {
    /// The customer at the kiosk.
    #[serde(rename = "self")]
    #[strum(serialize = "self")]
    SelfService,
    /// A clerk at the counter.
    #[serde(rename = "clerk")]
    #[strum(serialize = "clerk")]
    Clerk,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<Channel> {
        s.parse().ok()
    }
}

/// The parcel's physical condition as the clerk saw it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Condition {
    #[default]
    Intact,
    Damaged,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use State as S;

    /// Every (state, action) pair of SPEC §3: the legal ones and their
    /// target; everything else must be a `TransitionError`.
    #[test]
    fn every_pair_of_state_and_action() {
        let legal = [
            (S::Draft, A::Drop, S::Dropped),
            (S::Draft, A::Accept, S::Accepted),
            (S::Draft, A::Reject, S::Rejected),
            (S::Dropped, A::Accept, S::Accepted),
            (S::Dropped, A::Hold, S::Held),
            (S::Accepted, A::HandOver, S::HandedOver),
            (S::Accepted, A::Hold, S::Held),
            (S::Held, A::ReturnToCustomer, S::ReturnedToCustomer),
        ];
        let mut checked = 0;
        for from in S::iter() {
            for action in A::iter() {
                let expected = legal.iter().find(|(f, a, _)| *f == from && *a == action);
                match (from.apply(action), expected) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want, "{from} {action:?}"),
                    (Err(e), None) => assert_eq!(e, TransitionError { from, action }),
                    (got, want) => panic!("{from} {action:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 42);
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for from in [S::Rejected, S::HandedOver, S::ReturnedToCustomer] {
            assert!(A::iter().all(|a| from.apply(a).is_err()), "{from}");
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in S::iter() {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("lost".parse::<S>().unwrap_err().contains("draft"));
        for c in [Channel::SelfService, Channel::Clerk] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for c in [Condition::Intact, Condition::Damaged] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn error_reads_aloud() {
        let e = S::HandedOver.apply(A::Accept).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a parcel that is handed_over cannot be accepted"
        );
    }

    #[test]
    fn parcel_ids_only_from_ulids() {
        assert!(ParcelId::parse("01JD0000000000000000000000").is_some());
        for bad in ["", "x", "../../etc/passwd", "01JD00000000000000000000000"] {
            assert!(ParcelId::parse(bad).is_none(), "{bad}");
        }
    }
}
