//! Platform commands (SPEC §6.1 `…/commands`), applied idempotently by
//! `command_id`: the id is recorded in the same transaction as the effect,
//! so a command delivered twice (QoS 1) changes things once.
//!
//! A malformed command is an error the caller logs and skips; it never
//! stops the loop that received it.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::{DbError, Durability};
use crate::manifest::{self, ReturnEntry, ReturnStatus};
use crate::outbox::{self, Event, EventSource};
use crate::parcel::store::{self, Changes, StoreError};
use crate::parcel::{Action, ParcelId};
use crate::return_no::ReturnNo;

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The state machine refuses what the command asks of a parcel.
    #[error("the command cannot apply: {0}")]
    Refused(#[source] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for CommandError {
    fn from(e: rusqlite::Error) -> Self {
        CommandError::Db(e.into())
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => CommandError::Db(db),
            other => CommandError::Refused(other),
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now; the text says what changed.
    Done(String),
    /// Already applied earlier (same `command_id`).
    Duplicate,
    /// A type this version does not know; recorded and skipped.
    Unknown(String),
}

#[derive(Debug, Deserialize)]
struct Envelope {
    command_id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

/// A parsed, checked command.
enum Command {
    Authorized(Box<ReturnEntry>),
    Cancelled(String),
    /// The platform does not know this return (SPEC §2.4): a provisional
    /// acceptance of it goes `held`.
    UnknownReturn(String),
    Refresh,
    /// Upload the station's diagnostics (docs/PROTOCOL.md §2.3).
    Diagnostics,
    /// A block of e-waybill numbers for the pools (SPEC §2.5).
    Pool(crate::pool::Block),
    Status {
        return_no: String,
        status: String,
        at: String,
    },
    Unknown(String),
}

/// What the caller does once a command is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// Pull the manifest now.
    RefreshManifest,
    /// PUT the diagnostics under this `command_id`.
    UploadDiagnostics(String),
}

/// Applies one command payload. Returns what happened and what to do
/// next; a duplicate asks for nothing.
pub async fn apply(deps: &super::Deps, payload: &[u8]) -> Result<(Applied, Then), CommandError> {
    let (id, command) = parse(payload)?;
    let then = match command {
        Command::Refresh => Then::RefreshManifest,
        Command::Diagnostics => Then::UploadDiagnostics(id.clone()),
        _ => Then::Nothing,
    };
    let source = deps.events().clone();
    let (applied, held) = deps
        .db()
        .write(Durability::Full, move |tx| {
            apply_in(tx, &source, &id, command)
        })
        .await?;
    if held > 0 {
        deps.events_committed();
        deps.notify(crate::notice::Notice::Held { parcels: held });
    }
    let then = if applied == Applied::Duplicate {
        Then::Nothing
    } else {
        then
    };
    Ok((applied, then))
}

/// Checks a command payload without applying it; returns its
/// `command_id` (the fuzz tests drive the parser through this).
pub fn check(payload: &[u8]) -> Result<String, CommandError> {
    parse(payload).map(|(id, _)| id)
}

fn parse(payload: &[u8]) -> Result<(String, Command), CommandError> {
    let bad = |m: String| CommandError::Malformed(m);
    let env: Envelope = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    if env.command_id.is_empty() || env.command_id.len() > 128 {
        return Err(bad("command_id must be 1-128 characters".into()));
    }
    let return_no = |data: &Value| -> Result<String, CommandError> {
        data.get("return_no")
            .and_then(Value::as_str)
            .and_then(ReturnNo::parse)
            .map(String::from)
            .ok_or_else(|| bad("data.return_no must be a return number".into()))
    };
    let command = match env.kind.as_str() {
        "return.authorized" => {
            let entry = env
                .data
                .get("return")
                .ok_or_else(|| bad("data.return is missing".into()))?;
            let doc = serde_json::to_vec(&json!({ "returns": [entry] }))
                .map_err(|e| bad(e.to_string()))?;
            let mut page = manifest::parse(&doc).map_err(|e| bad(e.to_string()))?;
            Command::Authorized(Box::new(page.returns.remove(0)))
        }
        "return.cancelled" => Command::Cancelled(return_no(&env.data)?),
        "return.unknown" => Command::UnknownReturn(return_no(&env.data)?),
        "manifest.refresh" => Command::Refresh,
        "diagnostics.upload" => Command::Diagnostics,
        "waybill.pool" => {
            let block: crate::pool::Block =
                serde_json::from_value(env.data.clone()).map_err(|e| bad(format!("data: {e}")))?;
            Command::Pool(block.checked().map_err(|e| bad(format!("data: {e}")))?)
        }
        "parcel.status" => {
            let status = env
                .data
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 64)
                .ok_or_else(|| bad("data.status must be 1-64 characters".into()))?;
            let at = env
                .data
                .get("at")
                .and_then(Value::as_str)
                .filter(|s| crate::clock::parse(s).is_some())
                .ok_or_else(|| bad("data.at must be an RFC 3339 time".into()))?;
            Command::Status {
                return_no: return_no(&env.data)?,
                status: status.to_owned(),
                at: at.to_owned(),
            }
        }
        other => Command::Unknown(other.chars().take(64).collect()),
    };
    Ok((env.command_id, command))
}

fn apply_in(
    tx: &Transaction<'_>,
    source: &EventSource,
    id: &str,
    command: Command,
) -> Result<(Applied, usize), CommandError> {
    let seen: Option<String> = tx
        .query_row(
            "SELECT outcome FROM commands WHERE command_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    if seen.is_some() {
        return Ok((Applied::Duplicate, 0));
    }
    let (kind, applied, held) = match command {
        Command::Authorized(entry) => {
            manifest::upsert(tx, std::slice::from_ref(&entry))?;
            let held = if entry.status == ReturnStatus::Cancelled {
                hold_cancelled(tx, source, &entry.return_no)?
            } else {
                0
            };
            let text = format!("return {} {}", entry.return_no, entry.status.as_str());
            ("return.authorized", Applied::Done(text), held)
        }
        Command::Cancelled(rn) => {
            tx.execute(
                "UPDATE returns SET status = 'cancelled', updated_at = ?2 WHERE return_no = ?1",
                params![rn, crate::clock::now_string()],
            )?;
            let held = hold_cancelled(tx, source, &rn)?;
            let text = format!("return {rn} cancelled, {held} parcel(s) held");
            ("return.cancelled", Applied::Done(text), held)
        }
        Command::UnknownReturn(rn) => {
            let held = hold(tx, source, &rn, Hold::Unknown)?;
            let text =
                format!("return {rn} unknown to the platform, {held} provisional parcel(s) held");
            ("return.unknown", Applied::Done(text), held)
        }
        Command::Refresh => ("manifest.refresh", Applied::Done("refresh".into()), 0),
        Command::Diagnostics => (
            "diagnostics.upload",
            Applied::Done("diagnostics upload".into()),
            0,
        ),
        Command::Pool(block) => {
            let added = crate::pool::add(tx, &block)?;
            let text = format!(
                "{added} new e-waybill number(s) for {} ({} sent)",
                block.carrier,
                block.numbers.len()
            );
            ("waybill.pool", Applied::Done(text), 0)
        }
        Command::Status {
            return_no,
            status,
            at,
        } => {
            tx.execute(
                "INSERT INTO return_progress (return_no, status, at, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (return_no) DO UPDATE SET status = excluded.status,
                   at = excluded.at, updated_at = excluded.updated_at
                 WHERE excluded.at >= return_progress.at",
                params![return_no, status, at, crate::clock::now_string()],
            )?;
            let text = format!("return {return_no} progress {status}");
            ("parcel.status", Applied::Done(text), 0)
        }
        Command::Unknown(kind) => ("unknown", Applied::Unknown(kind), 0),
    };
    let outcome = match &applied {
        Applied::Done(t) => t.clone(),
        Applied::Unknown(k) => format!("unknown type {k}"),
        Applied::Duplicate => "duplicate".into(),
    };
    tx.execute(
        "INSERT INTO commands (command_id, type, applied_at, outcome) VALUES (?1, ?2, ?3, ?4)",
        params![id, kind, crate::clock::now_string(), outcome],
    )?;
    Ok((applied, held))
}

/// The platform cancelled return `rn`: a parcel for it still in the
/// station's hands (dropped or accepted) goes `held`, with its event.
pub fn hold_cancelled(
    tx: &Transaction<'_>,
    source: &EventSource,
    rn: &str,
) -> Result<usize, CommandError> {
    hold(tx, source, rn, Hold::Cancelled)
}

/// Why parcels of a return are put on hold.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Its return was cancelled: every parcel of it.
    Cancelled,
    /// The platform does not know it: parcels accepted provisionally only
    /// (a verified one was accepted against the manifest or a signed code).
    Unknown,
}

fn hold(
    tx: &Transaction<'_>,
    source: &EventSource,
    rn: &str,
    why: Hold,
) -> Result<usize, CommandError> {
    let (sql, reason) = match why {
        Hold::Cancelled => (
            "SELECT id FROM parcels WHERE return_no = ?1 AND state IN ('dropped', 'accepted')",
            "return_cancelled",
        ),
        Hold::Unknown => (
            "SELECT id FROM parcels WHERE return_no = ?1 AND state IN ('dropped', 'accepted') AND provisional = 1",
            "unknown_return",
        ),
    };
    let ids: Vec<String> = tx
        .prepare_cached(sql)?
        .query_map([rn], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let Some(id) = ParcelId::parse(id) else {
            continue;
        };
        let changes = Changes {
            hold_reason: Some(reason.into()),
            ..Changes::default()
        };
        let p = store::transition(tx, &id, Action::Hold, changes)?;
        let event = Event::Held {
            reason: reason.to_owned(),
        };
        outbox::append(tx, source, &event, &id, &p.return_no)?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_commands_are_named() {
        for (payload, want) in [
            (&b"not json"[..], "expected"),
            (br#"{"type":"manifest.refresh"}"#, "command_id"),
            (br#"{"command_id":"","type":"manifest.refresh"}"#, "command_id"),
            (br#"{"command_id":"c1","type":"return.cancelled","data":{}}"#, "return_no"),
            (br#"{"command_id":"c1","type":"return.authorized","data":{}}"#, "data.return"),
            (
                br#"{"command_id":"c1","type":"parcel.status","data":{"return_no":"RT000001","status":"x","at":"yesterday"}}"#,
                "data.at",
            ),
            (
                br#"{"command_id":"c1","type":"waybill.pool","data":{"carrier":"SF","numbers":["x"]}}"#,
                "not a waybill number",
            ),
            (
                br#"{"command_id":"c1","type":"waybill.pool","data":{"carrier":"SF"}}"#,
                "data: missing field `numbers`",
            ),
            (&[0xff, 0xfe][..], "expected"),
        ] {
            match parse(payload) {
                Err(CommandError::Malformed(m)) => assert!(m.contains(want), "{m} lacks {want}"),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("{:?} parsed", String::from_utf8_lossy(payload)),
            }
        }
    }

    #[test]
    fn a_pool_block_parses_normalised() {
        let (_, c) = parse(
            br#"{"command_id":"c2","type":"waybill.pool","data":{"carrier":"yto","numbers":["yt 1234 5678 9012"],"block_id":"B7"}}"#,
        )
        .unwrap();
        let Command::Pool(b) = c else {
            panic!("not a pool command")
        };
        assert_eq!(
            (b.carrier.as_str(), b.numbers[0].as_str()),
            ("YTO", "YT123456789012")
        );
        assert_eq!(b.block_id.as_deref(), Some("B7"));
    }

    #[test]
    fn unknown_types_parse_as_unknown() {
        let (id, c) = parse(br#"{"command_id":"c9","type":"future.thing","data":{}}"#).unwrap();
        assert_eq!(id, "c9");
        assert!(matches!(c, Command::Unknown(k) if k == "future.thing"));
    }
}
