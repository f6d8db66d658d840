//! The check-in path (SPEC §2.1, §2.2): scan → photos → drop or accept (or
//! reject), each step a method on [`Station`].
//!
//! # Invariants
//! - A scan that is accepted opens a `draft`; drafts are written with
//!   relaxed durability because they promise nothing (SPEC §3).
//! - Every other change commits its state and its outbox event in one
//!   fsync'd transaction before the method returns: a caller that sees `Ok`
//!   may tell the customer the parcel is in custody.
//! - A photo file is durable before the row naming it, and both happen while
//!   holding the writer, so draft clean-up cannot race a new photo.

mod error;
pub(crate) mod input;
pub mod inspect;

use serde::Serialize;

pub use error::CheckinError;
pub use input::AcceptInput;

use crate::code::{self, Decision, Facts, Parsed, Reason, ReturnNo, Source};
use crate::config::AutoPrint;
use crate::db::{self, Durability};
use crate::manifest::{self, Item};
use crate::metrics::Counted;
use crate::outbox::{self, Event};
use crate::parcel::store::{self, Changes, NewDraft, Parcel, StoreError};
use crate::parcel::{Action, Channel, ParcelId, State};
use crate::photo::{self, Kind, Photo, PhotoError};
use crate::receipt;
use crate::station::{Notice, Station};

/// The answer to a scan (SPEC §4).
#[derive(Debug, Clone, Serialize)]
pub struct ScanAnswer {
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Words for the screen: zh-CN and English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parcel_id: Option<ParcelId>,
    #[serde(rename = "return", skip_serializing_if = "Option::is_none")]
    pub return_info: Option<ReturnView>,
    /// Self-service drafts: the key the screen that scanned needs to add
    /// photos, drop the parcel off and fetch its receipt (issue 24).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The return as the one who scanned may see it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ReturnView {
    /// A clerk: everything the station knows.
    Clerk(ReturnInfo),
    /// A customer at the kiosk: what they already know, or need to drop
    /// the parcel off; never the merchant, SKUs or other returns' data.
    Customer(CustomerReturn),
}

/// What a customer is shown of their return.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerReturn {
    pub return_no: String,
    /// All but the last 4 characters masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
    /// Names and quantities, when the merchant allows it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<CustomerItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerItem {
    pub name: String,
    pub qty: u32,
}

impl ReturnView {
    pub fn return_no(&self) -> &str {
        match self {
            ReturnView::Clerk(i) => &i.return_no,
            ReturnView::Customer(c) => &c.return_no,
        }
    }
}

/// `1234567890` → `******7890`.
fn mask(order_no: &str) -> String {
    let chars: Vec<char> = order_no.chars().collect();
    let keep = chars.len().min(4);
    let hidden = chars.len() - keep;
    "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>()
}

/// Text for people, in both languages.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub zh: &'static str,
    pub en: &'static str,
}

/// What the station knows about the scanned return.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnInfo {
    pub return_no: String,
    pub merchant_id: Option<String>,
    pub order_no: Option<String>,
    pub expires_at: Option<i64>,
    pub items: Vec<Item>,
    pub source: Source,
    /// What the merchant asks the counter to check (SPEC §2.5): the clerk
    /// walks through it before accepting.
    #[serde(flatten)]
    pub rules: manifest::Rules,
}

impl ReturnInfo {
    /// The view for `channel`: everything for a clerk, little for a
    /// customer.
    fn view(self, channel: Channel) -> ReturnView {
        match channel {
            Channel::Clerk => ReturnView::Clerk(self),
            Channel::SelfService => ReturnView::Customer(CustomerReturn {
                order_no: self.order_no.as_deref().map(mask),
                items: if self.rules.customer_sees_items {
                    self.items
                        .iter()
                        .map(|i| CustomerItem {
                            name: i.name.clone(),
                            qty: i.qty,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                return_no: self.return_no,
            }),
        }
    }
}

/// A receipt as the API hands it out.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptView {
    pub receipt_id: String,
    pub token: String,
    pub parcel_id: ParcelId,
    pub return_no: String,
    pub station_name: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waybill_no: Option<String>,
    pub png: String,
    pub svg: String,
}

impl Station {
    /// Parses and decides a scanned code; on acceptance opens a draft. The
    /// screen hears of it on the stream (`scan`).
    pub async fn scan(&self, input: Vec<u8>, channel: Channel) -> Result<ScanAnswer, CheckinError> {
        let answer = self.decide_scan(input, channel).await?;
        self.notify(Notice::Scan {
            decision: answer.decision,
            reason: answer.reason,
            parcel_id: answer.parcel_id.clone(),
            channel,
        });
        Ok(answer)
    }

    /// [`Station::scan`] without telling the screen (device scans announce
    /// themselves once their answer is kept, see `hardware`).
    pub(crate) async fn decide_scan(
        &self,
        input: Vec<u8>,
        channel: Channel,
    ) -> Result<ScanAnswer, CheckinError> {
        let cfg = self.config();
        let parsed = match code::parse(&input, &cfg.codes.trusted_keys, &cfg.station.id) {
            Ok(p) => p,
            Err(reason) => return Ok(self.rejected(reason, None, channel)),
        };
        let rn = parsed.return_no().to_owned();
        let facts = self
            .db()
            .read(move |c| -> Result<Facts, CheckinError> {
                Ok(Facts {
                    manifest: manifest::get(c, &rn)?,
                    in_custody: store::return_in_custody(c, &rn)?,
                })
            })
            .await?;
        let now = crate::clock::now().timestamp();
        let info = return_info(&parsed, &facts);
        let (provisional, source) =
            match code::decide(&parsed, &facts, cfg.codes.offline_policy, now) {
                Decision::Reject(reason) => return Ok(self.rejected(reason, Some(info), channel)),
                Decision::Accept {
                    provisional,
                    source,
                } => (provisional, source),
            };
        let draft = NewDraft {
            return_no: info.return_no.clone(),
            merchant_id: info.merchant_id.clone(),
            order_no: info.order_no.clone(),
            channel,
            provisional,
            source,
            access_key: None,
        };
        let (id, key) = match channel {
            Channel::Clerk => {
                let id = self
                    .db()
                    .write(Durability::Relaxed, move |tx| {
                        store::insert_draft(tx, &draft).map_err(CheckinError::from)
                    })
                    .await?;
                (id, None)
            }
            Channel::SelfService => {
                let (id, key) = self.self_service_draft(draft).await?;
                (id, Some(key))
            }
        };
        self.metrics().scan(Ok(provisional));
        let decision = if provisional {
            "accept_provisional"
        } else {
            "accept"
        };
        Ok(ScanAnswer {
            decision,
            reason: None,
            message: None,
            parcel_id: Some(id),
            return_info: Some(info.view(channel)),
            key,
        })
    }

    /// Opens a customer's draft, bounded (issue 24): the open draft of the
    /// same return is reused (a customer scanning twice), and at most
    /// `station.max_self_drafts` are open at once. Returns its id and key.
    async fn self_service_draft(
        &self,
        mut draft: NewDraft,
    ) -> Result<(ParcelId, String), CheckinError> {
        let max = i64::from(self.config().station.max_self_drafts);
        let key = crate::clerk::new_token()
            .map_err(|e| CheckinError::Internal(format!("no randomness for a key: {e}")))?;
        draft.access_key = Some(key);
        self.db()
            .write(Durability::Relaxed, move |tx| {
                if let Some(open) = store::open_self_draft(tx, &draft.return_no)? {
                    return Ok(open);
                }
                if store::open_self_drafts(tx)? >= max {
                    return Err(CheckinError::TooManyDrafts { max });
                }
                let id = store::insert_draft(tx, &draft)?;
                Ok((id, draft.access_key.unwrap_or_default()))
            })
            .await
    }

    /// Whether `key` opens self-service parcel `id` (its photos, drop-off
    /// and receipt without a clerk).
    pub async fn key_opens(&self, id: &ParcelId, key: &str) -> Result<bool, CheckinError> {
        let (id, key) = (id.clone(), key.to_owned());
        self.db()
            .read(move |c| store::key_matches(c, &id, &key).map_err(CheckinError::from))
            .await
    }

    /// Finds the codes in a camera frame (JPEG or PNG) and decides the first
    /// return code among them, as [`Station::scan`] would; returns the
    /// answer and every code found. A frame with no return code in it is
    /// [`CheckinError::NoCode`].
    pub async fn scan_image(
        &self,
        bytes: Vec<u8>,
        channel: Channel,
    ) -> Result<(ScanAnswer, Vec<crate::decode::Found>), CheckinError> {
        let limit = self.config().storage.max_photo_bytes;
        if bytes.len() as u64 > limit {
            return Err(PhotoError::TooLarge {
                size: bytes.len() as u64,
                limit,
            }
            .into());
        }
        let found = self
            .photo_slots()
            .run(move || photo::decode_gray(&bytes).map(|g| crate::decode::find_codes(&g)))
            .await??;
        let mut chosen = None;
        for f in &found {
            if self.waybill_scanned(&f.text).await.is_none() {
                chosen = Some(f.text.clone());
                break;
            }
        }
        let Some(code) = chosen else {
            return Err(CheckinError::NoCode { found: found.len() });
        };
        let answer = self.scan(code.into_bytes(), channel).await?;
        Ok((answer, found))
    }

    /// A courier waybill, if that is what a clerk's scanner read: a number
    /// a carrier's pattern matches that is not a return in the manifest.
    /// Returns it normalised, with its carrier.
    pub(crate) async fn waybill_scanned(&self, code: &str) -> Option<(String, Option<String>)> {
        let waybill = crate::carrier::normalise_waybill(code)?;
        let carrier = self.config().carriers.detect(&waybill)?.code.clone();
        (!self.may_be_return(code).await).then_some((waybill, Some(carrier)))
    }

    /// An item's barcode (a GTIN), if that is what a clerk's scanner read:
    /// one with a valid check digit that is not a return in the manifest
    /// (the items step ticks it, SPEC §2.5).
    pub(crate) async fn item_scanned(&self, code: &str) -> Option<String> {
        let code = code.trim();
        if !inspect::is_gtin(code) || self.may_be_return(code).await {
            return None;
        }
        Some(code.to_owned())
    }

    /// Whether a scanned `code` that could be something else is a return
    /// number the manifest knows (or might: a failed read counts as yes).
    async fn may_be_return(&self, code: &str) -> bool {
        let Some(rn) = ReturnNo::parse(code).map(String::from) else {
            return false;
        };
        let known = self
            .db()
            .read(move |c| manifest::get(c, &rn).map_err(CheckinError::from))
            .await;
        !matches!(known, Ok(None))
    }

    fn rejected(&self, reason: Reason, info: Option<ReturnInfo>, channel: Channel) -> ScanAnswer {
        self.metrics().scan(Err(reason));
        let (zh, en) = reason.words();
        ScanAnswer {
            decision: "reject",
            reason: Some(reason),
            message: Some(Message { zh, en }),
            parcel_id: None,
            // A customer learns the reason only: nothing about the return
            // (its number could have been guessed).
            return_info: match channel {
                Channel::Clerk => info.map(|i| i.view(channel)),
                Channel::SelfService => None,
            },
            key: None,
        }
    }

    /// Stores a photo of parcel `id`. Photos added after the draft stage
    /// commit a `parcel.photo_added` event. Without a clerk (`by_clerk`
    /// false) only a self-service draft takes photos.
    pub async fn add_photo(
        &self,
        id: &ParcelId,
        kind: Kind,
        bytes: Vec<u8>,
        by_clerk: bool,
    ) -> Result<Photo, CheckinError> {
        let result = self.add_photo_inner(id, kind, bytes, by_clerk).await;
        self.metrics().photo(result.is_ok());
        // The upload's buffers are free now (some on this thread's arena):
        // give the memory back to the system.
        tokio::task::spawn_blocking(photo::release_memory);
        result
    }

    async fn add_photo_inner(
        &self,
        id: &ParcelId,
        kind: Kind,
        bytes: Vec<u8>,
        by_clerk: bool,
    ) -> Result<Photo, CheckinError> {
        let limit = self.config().storage.max_photo_bytes;
        if bytes.len() as u64 > limit {
            return Err(PhotoError::TooLarge {
                size: bytes.len() as u64,
                limit,
            }
            .into());
        }
        let parcel = self.parcel(id).await?;
        if !by_clerk && !self_service_draft(&parcel) {
            return Err(CheckinError::ClerkOnly);
        }
        if !accepts_photos(parcel.state) {
            return Err(CheckinError::PhotoNotAllowed(parcel.state));
        }
        self.photos().check_free_space()?;
        let max_px = self.config().storage.photo_max_px;
        let processed = self
            .photo_slots()
            .run(move || photo::process(&bytes, max_px))
            .await??;
        let photo = Photo {
            sha256: processed.sha256.clone(),
            bytes: processed.jpeg.len() as u64,
            width: processed.width,
            height: processed.height,
            kind,
        };
        // The file's two flushes happen here, not while holding the writer
        // (every other check-in's commit would wait on them).
        let (photos, sha, jpeg) = (self.photos().clone(), photo.sha256.clone(), processed.jpeg);
        let (prepared, jpeg) = tokio::task::spawn_blocking(move || {
            let prepared = photos.prepare(&sha, &jpeg);
            (prepared, jpeg)
        })
        .await
        .map_err(crate::db::DbError::from)?;
        let prepared = prepared?;
        let (station, id, stored) = (self.clone(), id.clone(), photo.clone());
        self.db()
            .with_writer(move |conn| {
                station.attach_photo_locked(conn, &id, &stored, &jpeg, prepared, by_clerk)
            })
            .await?;
        Ok(photo)
    }

    /// Runs with the writer held: the prepared file confirmed (durable),
    /// then the row.
    fn attach_photo_locked(
        &self,
        conn: &mut rusqlite::Connection,
        id: &ParcelId,
        photo: &Photo,
        jpeg: &[u8],
        prepared: photo::store::Prepared,
        by_clerk: bool,
    ) -> Result<(), CheckinError> {
        self.photos().confirm(&photo.sha256, jpeg, prepared)?;
        let state = store::get(conn, id)?
            .ok_or_else(|| CheckinError::NotFound(id.clone()))?
            .state;
        let durability = if state == State::Draft {
            Durability::Relaxed
        } else {
            Durability::Full
        };
        let result = db::transaction(conn, durability, |tx| -> Result<(), CheckinError> {
            let parcel = store::get(tx, id)?.ok_or_else(|| CheckinError::NotFound(id.clone()))?;
            if !by_clerk && !self_service_draft(&parcel) {
                return Err(CheckinError::ClerkOnly);
            }
            if !accepts_photos(parcel.state) {
                return Err(CheckinError::PhotoNotAllowed(parcel.state));
            }
            let added = store::attach_photo(tx, id, photo)?;
            if added && parcel.state != State::Draft {
                let event = Event::PhotoAdded {
                    photo: photo.clone(),
                };
                outbox::append(tx, self.events(), &event, id, &parcel.return_no)?;
                self.metrics().transition(Counted::PhotoAdded);
            }
            Ok(())
        });
        if result.is_ok() && state != State::Draft {
            self.events_committed();
        }
        if result.is_err() {
            let referenced: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM photos WHERE sha256 = ?1)",
                    [&photo.sha256],
                    |r| r.get(0),
                )
                .unwrap_or(true);
            if !referenced {
                let _ = self.photos().remove(&photo.sha256);
            }
        }
        result
    }

    /// Self-service drop-off: `draft` → `dropped`; custody starts.
    pub async fn drop_off(&self, id: &ParcelId) -> Result<ReceiptView, CheckinError> {
        let custody = Custody {
            action: Action::Drop,
            event: Event::dropped,
            counted: Counted::Dropped,
            print: AutoPrint::Drop,
        };
        self.take_into_custody(id, custody, |_, _, parcel| {
            if parcel.channel != Channel::SelfService {
                return Err(CheckinError::WrongChannel);
            }
            Ok(Changes::default())
        })
        .await
    }

    /// A clerk accepts the parcel with its waybill: `draft`/`dropped` →
    /// `accepted`.
    pub async fn accept(
        &self,
        id: &ParcelId,
        input: AcceptInput,
    ) -> Result<ReceiptView, CheckinError> {
        let custody = Custody {
            action: Action::Accept,
            event: Event::accepted,
            counted: Counted::Accepted,
            print: AutoPrint::Accept,
        };
        let mut input = input;
        let submitted = input.take_checks()?;
        // Not typed: the counter scale's stable reading, if one is fresh.
        if input.weight_g.is_none() {
            input.weight_g = self.devices().fresh_weight();
        }
        self.take_into_custody(id, custody, move |station, tx, parcel| {
            let entry = manifest::get(tx, &parcel.return_no)?;
            let expected = entry.as_ref().map(|m| m.items.clone()).unwrap_or_default();
            let pooled = input.waybill_source == Some(input::WaybillSource::Pool);
            if pooled {
                let designated = entry.as_ref().and_then(|e| e.rules.carrier.as_deref());
                pooled_waybill(station, tx, parcel, &mut input, designated)?;
            }
            let mut changes = input.into_changes(&station.config().carriers, &expected)?;
            if pooled {
                changes.waybill_source = Some("pool".into());
            }
            let found = inspect::Found {
                checks: submitted.checks,
                gtins: submitted.gtins,
                ticks: changes.items.as_deref(),
                carrier: changes.carrier.as_deref(),
                weight_g: changes.weight_g,
            };
            changes.verification = inspect::inspect(entry.as_ref(), found)?;
            Ok(changes)
        })
        .await
    }

    /// Drop and accept: load, check, change and record the parcel in one
    /// write job (what is checked is what is changed, and the request costs
    /// one trip to the writer), then hand out its receipt. `changes` checks
    /// what is particular to the action and returns the fields to set.
    async fn take_into_custody<F>(
        &self,
        id: &ParcelId,
        custody: Custody,
        changes: F,
    ) -> Result<ReceiptView, CheckinError>
    where
        F: FnOnce(&Station, &rusqlite::Transaction<'_>, &Parcel) -> Result<Changes, CheckinError>
            + Send
            + 'static,
    {
        let station = self.clone();
        let id = id.clone();
        let parcel = self
            .db()
            .write(Durability::Full, move |tx| {
                let parcel =
                    store::get(tx, &id)?.ok_or_else(|| CheckinError::NotFound(id.clone()))?;
                // Refuse an impossible transition before complaining about fields.
                parcel.state.apply(custody.action)?;
                let mut changes = changes(&station, tx, &parcel)?;
                station.require_photos(&parcel)?;
                // A parcel dropped at the kiosk keeps the receipt it was
                // given (the store keeps the first id); one accepted at the
                // counter gets its receipt now.
                changes.receipt_id = Some(ulid::Ulid::new().to_string());
                let p = store::transition_from(tx, parcel, custody.action, changes)?;
                outbox::append(
                    tx,
                    station.events(),
                    &(custody.event)(&p),
                    &id,
                    &p.return_no,
                )?;
                // The receipt prints if and only if this commits.
                if station.prints(custody.print) {
                    crate::print::store::enqueue(tx, crate::print::JobKind::Receipt, id.as_str())?;
                }
                // A number from the pool needs its label on the parcel.
                let hw = &station.config().hardware;
                if p.waybill_source.as_deref() == Some("pool")
                    && (hw.printer.is_some() || hw.label_printer.is_some())
                {
                    crate::print::store::enqueue(tx, crate::print::JobKind::Label, id.as_str())?;
                }
                Ok::<_, CheckinError>(p)
            })
            .await?;
        self.events_committed();
        self.metrics().transition(custody.counted);
        self.notify(Notice::Parcel {
            parcel_id: parcel.id.clone(),
            state: parcel.state,
        });
        self.receipt(&parcel)
    }

    /// A clerk rejects a draft: `draft` → `rejected`.
    pub async fn reject(
        &self,
        id: &ParcelId,
        reason: String,
        clerk_id: Option<String>,
    ) -> Result<Parcel, CheckinError> {
        let reason = input::bounded_text("reason", reason, 200)?;
        let station = self.clone();
        let id = id.clone();
        let parcel = self
            .db()
            .write(Durability::Full, move |tx| {
                let changes = Changes {
                    reject_reason: Some(reason.clone()),
                    clerk_id: clerk_id.clone(),
                    ..Changes::default()
                };
                let p = store::transition(tx, &id, Action::Reject, changes)?;
                let event = Event::Rejected { reason, clerk_id };
                outbox::append(tx, station.events(), &event, &id, &p.return_no)?;
                Ok::<_, CheckinError>(p)
            })
            .await?;
        self.events_committed();
        self.metrics().transition(Counted::Rejected);
        self.notify(Notice::Parcel {
            parcel_id: parcel.id.clone(),
            state: parcel.state,
        });
        Ok(parcel)
    }

    /// One parcel with its photos.
    pub async fn parcel(&self, id: &ParcelId) -> Result<Parcel, CheckinError> {
        let key = id.clone();
        self.db()
            .read(move |c| store::get(c, &key).map_err(CheckinError::from))
            .await?
            .ok_or_else(|| CheckinError::NotFound(id.clone()))
    }

    /// Parcels, newest first, optionally in one state.
    pub async fn parcels(
        &self,
        state: Option<State>,
        limit: u32,
    ) -> Result<Vec<Parcel>, CheckinError> {
        self.db()
            .read(move |c| store::list(c, state, limit).map_err(CheckinError::from))
            .await
    }

    /// The manual lookup of SPEC §2.1.
    pub async fn lookup(
        &self,
        query: String,
        limit: u32,
    ) -> Result<Vec<manifest::ReturnEntry>, CheckinError> {
        self.db()
            .read(move |c| manifest::lookup(c, &query, limit).map_err(CheckinError::from))
            .await
    }

    /// The receipt token of a parcel that has one.
    pub async fn receipt_token(&self, id: &ParcelId) -> Result<String, CheckinError> {
        let parcel = self.parcel(id).await?;
        Ok(self.receipt(&parcel)?.token)
    }

    /// The receipt of a parcel that has one.
    pub fn receipt(&self, p: &Parcel) -> Result<ReceiptView, CheckinError> {
        let (Some(rid), Some(at)) = (&p.receipt_id, &p.receipt_at) else {
            return Err(CheckinError::NoReceipt(p.state));
        };
        let cfg = self.config();
        let claims = receipt::Claims {
            rid: rid.clone(),
            rn: p.return_no.clone(),
            sid: cfg.station.id.clone(),
            did: cfg.station.device_id.clone(),
            at: at.clone(),
            wb: p.waybill_no.clone(),
            ph: (!p.photos.is_empty())
                .then(|| crate::custody::digest(p.photos.iter().map(|ph| ph.sha256.as_str()))),
            wg: p.weight_g,
            vd: p
                .verification
                .as_ref()
                .map(crate::custody::verification_digest),
        };
        let token = receipt::issue(&claims, self.signing_key());
        Ok(ReceiptView {
            receipt_id: rid.clone(),
            token: token.clone(),
            parcel_id: p.id.clone(),
            return_no: p.return_no.clone(),
            station_name: cfg.station.name.clone(),
            at: at.clone(),
            waybill_no: p.waybill_no.clone(),
            // The token opens the receipt's pictures: an <img> sends no
            // session, and the token is what they show anyway.
            png: format!("/api/v1/parcels/{}/receipt.png?token={token}", p.id),
            svg: format!("/api/v1/parcels/{}/receipt.svg?token={token}", p.id),
        })
    }

    /// Whether `what` prints by itself (a printer is configured and its
    /// `auto` list names it).
    pub(crate) fn prints(&self, what: AutoPrint) -> bool {
        self.config()
            .hardware
            .printer
            .as_ref()
            .is_some_and(|p| p.prints(what))
    }

    fn require_photos(&self, p: &Parcel) -> Result<(), CheckinError> {
        let need = self.config().station.min_photos as usize;
        if p.photos.len() < need {
            return Err(CheckinError::PhotosRequired {
                have: p.photos.len(),
                need,
            });
        }
        Ok(())
    }
}

/// What a customer may photograph without a clerk: their own draft.
fn self_service_draft(p: &Parcel) -> bool {
    p.state == State::Draft && p.channel == Channel::SelfService
}

fn accepts_photos(state: State) -> bool {
    matches!(
        state,
        State::Draft | State::Dropped | State::Accepted | State::Held
    )
}

fn return_info(parsed: &Parsed, facts: &Facts) -> ReturnInfo {
    let m = facts.manifest.as_ref();
    let (token_mid, token_ord, token_exp) = match parsed {
        Parsed::Token(c) => (Some(c.mid.clone()), c.ord.clone(), Some(c.exp)),
        Parsed::Number(_) => (None, None, None),
    };
    ReturnInfo {
        return_no: parsed.return_no().to_owned(),
        merchant_id: m.map(|m| m.merchant_id.clone()).or(token_mid),
        order_no: m.and_then(|m| m.order_no.clone()).or(token_ord),
        expires_at: m.and_then(|m| m.expires_at).or(token_exp),
        items: m.map(|m| m.items.clone()).unwrap_or_default(),
        rules: m.map(|m| m.rules.clone()).unwrap_or_default(),
        source: match (m, parsed) {
            (Some(_), _) => Source::Manifest,
            (None, Parsed::Token(_)) => Source::Token,
            (None, Parsed::Number(_)) => Source::Unverified,
        },
    }
}

/// A parcel without a label: the next e-waybill number of its carrier (the
/// one given, else the merchant's designated one) from the pool, in the
/// acceptance's transaction.
fn pooled_waybill(
    station: &Station,
    tx: &rusqlite::Transaction<'_>,
    parcel: &Parcel,
    input: &mut AcceptInput,
    designated: Option<&str>,
) -> Result<(), CheckinError> {
    if !input.waybill_no.trim().is_empty() {
        return Err(CheckinError::invalid(
            "invalid_waybill",
            "waybill_source \"pool\" takes a number from the pool: send no waybill_no",
        ));
    }
    let given = input
        .carrier
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .or(designated)
        .ok_or_else(|| {
            CheckinError::invalid(
                "unknown_carrier",
                "a number from the pool needs the carrier: give carrier",
            )
        })?;
    let carrier = station.config().carriers.code_of(given);
    let number = crate::pool::take(tx, &carrier, parcel.id.as_str())?.ok_or_else(|| {
        CheckinError::refused(
            "pool_empty",
            format!(
                "no e-waybill numbers left for {carrier}: scan a label from the courier, or wait for the platform to send more"
            ),
        )
    })?;
    input.waybill_no = number;
    input.carrier = Some(carrier);
    Ok(())
}

/// What differs between the two ways into custody.
struct Custody {
    action: Action,
    /// Its event, from the parcel as it entered custody.
    event: fn(&Parcel) -> Event,
    counted: Counted,
    /// The receipt prints by itself when `hardware.printer.auto` says so.
    print: AutoPrint,
}

impl From<StoreError> for CheckinError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => CheckinError::NotFound(id),
            StoreError::Transition(t) => CheckinError::Transition(t),
            StoreError::Conflict(id) => CheckinError::Conflict(id),
            StoreError::ReturnInCustody(rn) => CheckinError::AlreadyDroppedOff(rn),
            StoreError::WaybillInCustody(wb) => CheckinError::WaybillInCustody(wb),
            StoreError::Db(e) => CheckinError::Db(e),
        }
    }
}
