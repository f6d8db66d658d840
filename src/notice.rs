//! What the kiosk screen hears about as it happens (`GET /api/v1/stream`):
//! a leaf every task can send without holding the station.

/// Something the kiosk screen should hear about at once.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// A code was scanned and decided.
    Scan {
        decision: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<crate::code::Reason>,
        #[serde(skip_serializing_if = "Option::is_none")]
        parcel_id: Option<crate::parcel::ParcelId>,
        channel: crate::parcel::Channel,
    },
    /// A scanner read a code; the screen fetches the scan by id
    /// (`GET /api/v1/scans/{scan_id}`) for what it needs.
    DeviceScan {
        scan_id: String,
        device: String,
        channel: crate::parcel::Channel,
        code_type: crate::hardware::CodeType,
        #[serde(skip_serializing_if = "Option::is_none")]
        decision: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<crate::code::Reason>,
    },
    /// A device's state changed (a scanner unplugged, the printer out of
    /// paper…).
    Device {
        device: String,
        state: crate::hardware::DeviceState,
    },
    /// The counter scale's reading changed.
    Weight { grams: i64, stable: bool },
    /// The platform's commands put parcels on hold.
    Held { parcels: usize },
    /// The clock became untrusted, or trusted again.
    Clock { trusted: bool },
    /// A parcel changed state (committed).
    Parcel {
        parcel_id: crate::parcel::ParcelId,
        state: crate::parcel::State,
    },
}
