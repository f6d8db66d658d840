//! Printed receipts and courier slips (SPEC §8, §10): durable print jobs
//! and what each one looks like on paper.
//!
//! # Invariants
//! - A job is a row in `print_jobs`, written in the same transaction as the
//!   check-in or handover that causes it, so a job exists exactly when its
//!   cause committed: a `kill -9` or power cut loses neither, and a refused
//!   check-in prints nothing.
//! - Jobs print in `id` order, each once: `printed_at` is set only after
//!   its bytes were written and the printer answered a status query sent
//!   after them (`hardware::printer`). A crash between the two prints it
//!   again, never skips it.
//! - A job names what to print (a parcel's receipt, a handover's slip); its
//!   bytes are rendered when it prints, from committed rows.

pub mod escpos;
pub mod store;

use crate::config::PrinterConfig;
use crate::counter::Handover;
use crate::parcel::State;
use crate::parcel::store::Parcel;
use escpos::{Align, Doc};

/// What a job prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A parcel's receipt (`ref_id` = parcel id).
    Receipt,
    /// A handover's courier slip (`ref_id` = handover id).
    Handover,
    /// An e-waybill label for a parcel that took a pool number (`ref_id` =
    /// parcel id).
    Label,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Receipt => "receipt",
            JobKind::Handover => "handover",
            JobKind::Label => "label",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "receipt" => Some(JobKind::Receipt),
            "handover" => Some(JobKind::Handover),
            "label" => Some(JobKind::Label),
            _ => None,
        }
    }
}

/// What a receipt shows besides the parcel itself.
pub struct ReceiptLook<'a> {
    pub station_name: &'a str,
    pub token: &'a str,
}

/// The customer's receipt: station, return number, parcel, time, state,
/// carrier and waybill, item ticks, and the signed receipt token as a QR
/// code to verify it.
pub fn receipt(cfg: &PrinterConfig, p: &Parcel, look: &ReceiptLook<'_>) -> Vec<u8> {
    let mut d = Doc::new(cfg.encoding, cfg.width_dots);
    d.align(Align::Center).size(2).bold(true);
    d.line(look.station_name);
    d.size(1).bold(false).line("退货收据 Return receipt");
    d.align(Align::Left).rule();
    d.line(&format!("退货单号 Return no: {}", p.return_no));
    d.line(&format!("包裹 Parcel: {}", p.id));
    let at = p.receipt_at.as_deref().unwrap_or(&p.updated_at);
    d.line(&format!("时间 Time: {}", local_time(at)));
    d.line(&format!("状态 State: {}", state_words(p.state)));
    if let Some(wb) = &p.waybill_no {
        d.line(&format!(
            "快递 Carrier: {}  运单 Waybill: {wb}",
            p.carrier.as_deref().unwrap_or("-")
        ));
    }
    if let Some(items) = p.items.as_ref().filter(|i| !i.is_empty()) {
        d.line("物品 Items:");
        for it in items {
            let tick = if it.qty >= it.qty_expected {
                "[x]"
            } else if it.qty == 0 {
                "[ ]"
            } else {
                "[~]"
            };
            let name = if it.name.is_empty() {
                &it.sku
            } else {
                &it.name
            };
            d.line(&format!(
                " {tick} {name} ({}) {}/{}",
                it.sku, it.qty, it.qty_expected
            ));
        }
    }
    d.rule().align(Align::Center);
    if d.qr(look.token, 0.6).is_err() {
        // A token too long for a QR code cannot happen (tokens are a few
        // hundred bytes); print it as text rather than nothing.
        d.line(look.token);
    }
    d.line("凭此码查询与核验 Scan to verify");
    if let Some(rid) = &p.receipt_id {
        d.line(rid);
    }
    d.feed(3).cut();
    d.into_bytes()
}

/// The courier's slip: every waybill, the count, courier, carrier, time,
/// the handover's signed token as a QR code, and a line to sign.
pub fn handover_slip(cfg: &PrinterConfig, h: &Handover, station_name: &str) -> Vec<u8> {
    let mut d = Doc::new(cfg.encoding, cfg.width_dots);
    d.align(Align::Center).size(2).bold(true);
    d.line(station_name);
    d.size(1).bold(false).line("交接单 Courier handover slip");
    d.align(Align::Left).rule();
    d.line(&format!("交接号 Handover: {}", h.id));
    d.line(&format!("快递员 Courier: {}", h.courier));
    d.line(&format!("快递公司 Carrier: {}", h.carrier));
    d.line(&format!("时间 Time: {}", local_time(&h.created_at)));
    d.line(&format!("件数 Parcels: {}", h.parcels.len()));
    d.rule();
    for (i, p) in h.parcels.iter().enumerate() {
        d.line(&format!(
            "{:>3}. {}  {}",
            i + 1,
            p.waybill_no.as_deref().unwrap_or("-"),
            p.return_no
        ));
    }
    d.rule();
    if let Some(token) = &h.token {
        d.align(Align::Center);
        if d.qr(token, 0.6).is_err() {
            // The token lists at most 60 waybills (a digest above): it
            // fits a QR code; print it as text rather than nothing.
            d.line(token);
        }
        d.line("凭此码核验交接 Scan to verify this handover");
        d.align(Align::Left);
    }
    d.feed(2);
    d.line("快递员签收 Courier signature:");
    let signature_line = "_".repeat(d.columns());
    d.feed(2).line(&signature_line);
    d.feed(3).cut();
    d.into_bytes()
}

/// The 76×130 mm e-waybill label of a parcel without a courier label
/// (SPEC §2.5): carrier, the waybill as Code 128 and in text, sender (the
/// station), receiver (the merchant's warehouse from the manifest), the
/// return number.
pub fn label(
    cfg: &PrinterConfig,
    p: &Parcel,
    station_name: &str,
    receiver: Option<&crate::manifest::Warehouse>,
) -> Vec<u8> {
    let waybill = p.waybill_no.as_deref().unwrap_or("-");
    let mut d = Doc::new(cfg.encoding, cfg.width_dots);
    d.align(Align::Center).size(2).bold(true);
    d.line(p.carrier.as_deref().unwrap_or("-"));
    d.size(1).bold(false).line("电子面单 E-waybill");
    d.rule();
    // About 15 mm tall at 8 dots a millimetre.
    d.code128(waybill, 120);
    d.size(2).bold(true).line(waybill);
    d.size(1).bold(false).align(Align::Left).rule();
    d.line(&format!("寄件 From: {station_name}"));
    d.rule();
    match receiver {
        Some(w) => {
            d.line(&format!("收件 To: {}", w.name));
            if let Some(phone) = &w.phone {
                d.line(&format!("电话 Tel: {phone}"));
            }
            d.line(&format!("地址 Address: {}", w.address));
        }
        None => {
            d.line("收件 To: (见平台 see the platform)");
        }
    }
    d.rule();
    d.line(&format!("退货单号 Return no: {}", p.return_no));
    d.line(&format!("包裹 Parcel: {}", p.id));
    // The rest of the 130 mm label.
    d.feed(8).cut();
    d.into_bytes()
}

/// Words for a state on paper, both languages.
fn state_words(s: State) -> String {
    let zh = match s {
        State::Draft => "待处理",
        State::Dropped => "已投递",
        State::Accepted => "已收件",
        State::Rejected => "已拒收",
        State::HandedOver => "已交快递",
        State::Held => "暂扣",
        State::ReturnedToCustomer => "已退还顾客",
    };
    format!("{zh} {}", s.as_str())
}

/// A stored UTC time as the kiosk's local time, to the minute.
fn local_time(at: &str) -> String {
    crate::clock::parse(at).map_or_else(
        || at.to_owned(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string()
        },
    )
}
