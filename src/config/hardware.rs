//! `[hardware]` (SPEC §10): the kiosk's scanners, camera and receipt
//! printer. Every device is optional; the embedded defaults configure none.
//!
//! Parsed like every other section: a raw serde shape that denies unknown
//! keys, then checks that collect every problem with its key.

use std::path::PathBuf;

use serde::Deserialize;

use super::raw::Problems;
use crate::parcel::Channel;

/// Baud rates a serial port can be set to (termios' standard speeds).
pub const BAUD_RATES: [u32; 14] = [
    1200, 2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000, 576_000,
    921_600, 1_000_000,
];

/// `[hardware]`.
#[derive(Debug, Clone, Default)]
pub struct HardwareConfig {
    pub scanners: Vec<ScannerConfig>,
    pub camera: Option<CameraConfig>,
    pub printer: Option<PrinterConfig>,
    /// A second printer for e-waybill labels (SPEC §2.5); without it labels
    /// print on `printer`.
    pub label_printer: Option<PrinterConfig>,
    pub scale: Option<ScaleConfig>,
}

/// `[hardware.scale]`: a serial counter scale (SPEC §2.5).
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    pub path: PathBuf,
    pub baud: u32,
}

/// How a scanner talks to the kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerKind {
    /// A tty: USB CDC-ACM (`/dev/ttyACM*`) or RS-232, one line per scan.
    Serial,
    /// A USB HID scanner in keyboard mode (`/dev/input/…-event-kbd`).
    Evdev,
}

impl ScannerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScannerKind::Serial => "serial",
            ScannerKind::Evdev => "evdev",
        }
    }
}

/// One `[[hardware.scanners]]` entry.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// In logs, `/healthz` and metrics.
    pub name: String,
    pub kind: ScannerKind,
    pub path: PathBuf,
    /// Serial only.
    pub baud: u32,
    /// Which flow its scans feed.
    pub channel: Channel,
}

/// `[hardware.camera]`.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// The V4L2 device, e.g. `/dev/video0`.
    pub device: PathBuf,
    /// Look for return codes in its frames (self-service).
    pub decode: bool,
}

/// Where the printer's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterLink {
    /// A network printer's raw port (9100), `host:port`.
    Tcp(String),
    /// A device file such as `/dev/usb/lp0`.
    Device(PathBuf),
    /// A serial port.
    Serial { path: PathBuf, baud: u32 },
}

/// What prints by itself, without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPrint {
    /// A receipt when a clerk accepts a parcel.
    Accept,
    /// A receipt when a customer drops a parcel at the kiosk.
    Drop,
    /// The courier's slip of every handover.
    Handover,
}

/// `[hardware.printer]`: an ESC/POS thermal printer.
#[derive(Debug, Clone)]
pub struct PrinterConfig {
    pub link: PrinterLink,
    /// Dots across the head: 576 for 80 mm paper, 384 for 58 mm.
    pub width_dots: u32,
    /// The encoding of the printer's (Chinese) text font.
    pub encoding: &'static encoding_rs::Encoding,
    pub auto: Vec<AutoPrint>,
}

impl PrinterConfig {
    /// Whether `what` prints without being asked.
    pub fn prints(&self, what: AutoPrint) -> bool {
        self.auto.contains(&what)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHardware {
    #[serde(default)]
    scanners: Vec<RawScanner>,
    #[serde(default)]
    camera: Option<RawCamera>,
    #[serde(default)]
    printer: Option<RawPrinter>,
    #[serde(default)]
    label_printer: Option<RawPrinter>,
    #[serde(default)]
    scale: Option<RawScale>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    path: String,
    #[serde(default = "default_baud")]
    baud: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanner {
    name: String,
    kind: String,
    path: String,
    #[serde(default = "default_baud")]
    baud: i64,
    channel: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    device: String,
    #[serde(default = "yes")]
    decode: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrinter {
    kind: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    path: String,
    #[serde(default = "default_baud")]
    baud: i64,
    #[serde(default = "default_width")]
    width_dots: i64,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default = "default_auto")]
    auto: Vec<String>,
}

fn default_baud() -> i64 {
    9600
}

fn yes() -> bool {
    true
}

fn default_width() -> i64 {
    576
}

fn default_encoding() -> String {
    "gb18030".into()
}

fn default_auto() -> Vec<String> {
    vec!["accept".into(), "drop".into(), "handover".into()]
}

impl RawHardware {
    pub(super) fn validate(self, p: &mut Problems) -> HardwareConfig {
        let mut scanners: Vec<ScannerConfig> = Vec::new();
        for (i, s) in self.scanners.into_iter().enumerate() {
            if let Some(s) = scanner(p, i, s) {
                if scanners.iter().any(|known| known.name == s.name) {
                    p.push(format!(
                        "hardware.scanners[{i}].name = {:?}: expected each scanner name once",
                        s.name
                    ));
                }
                scanners.push(s);
            }
        }
        HardwareConfig {
            scanners,
            camera: self.camera.and_then(|c| camera(p, c)),
            printer: self.printer.and_then(|r| printer(p, "printer", r)),
            label_printer: self
                .label_printer
                .and_then(|r| printer(p, "label_printer", r)),
            scale: self.scale.and_then(|s| {
                let path = device_path(p, "hardware.scale.path", &s.path);
                let baud = baud(p, "hardware.scale.baud", s.baud);
                Some(ScaleConfig { path: path?, baud })
            }),
        }
    }
}

fn scanner(p: &mut Problems, i: usize, s: RawScanner) -> Option<ScannerConfig> {
    let key = |field: &str| format!("hardware.scanners[{i}].{field}");
    let name = p.ident(&key("name"), s.name);
    let kind = p.choice(
        &key("kind"),
        &s.kind,
        &[
            ("serial", ScannerKind::Serial),
            ("evdev", ScannerKind::Evdev),
        ],
        ScannerKind::Serial,
    );
    let channel = p.choice(
        &key("channel"),
        &s.channel,
        &[("clerk", Channel::Clerk), ("self", Channel::SelfService)],
        Channel::Clerk,
    );
    let path = device_path(p, &key("path"), &s.path);
    let baud = baud(p, &key("baud"), s.baud);
    Some(ScannerConfig {
        name,
        kind,
        path: path?,
        baud,
        channel,
    })
}

fn camera(p: &mut Problems, c: RawCamera) -> Option<CameraConfig> {
    Some(CameraConfig {
        device: device_path(p, "hardware.camera.device", &c.device)?,
        decode: c.decode,
    })
}

/// `[hardware.printer]` or `[hardware.label_printer]` (`section`: the key
/// prefix problems are named with).
fn printer(p: &mut Problems, section: &str, r: RawPrinter) -> Option<PrinterConfig> {
    let key = |field: &str| format!("hardware.{section}.{field}");
    let kind = p.choice(
        &key("kind"),
        &r.kind,
        &[("tcp", "tcp"), ("device", "device"), ("serial", "serial")],
        "",
    );
    let link = match kind {
        "tcp" => {
            if !r.path.is_empty() {
                p.push(format!(
                    "{} = {:?}: a tcp printer has an address, not a path; expected path unset",
                    key("path"),
                    r.path
                ));
            }
            tcp_address(p, &key("address"), &r.address).map(PrinterLink::Tcp)
        }
        "device" | "serial" => {
            if !r.address.is_empty() {
                p.push(format!(
                    "{} = {:?}: a {kind} printer has a path, not an address; expected address unset",
                    key("address"),
                    r.address
                ));
            }
            let path = device_path(p, &key("path"), &r.path);
            let baud = baud(p, &key("baud"), r.baud);
            path.map(|path| match kind {
                "serial" => PrinterLink::Serial { path, baud },
                _ => PrinterLink::Device(path),
            })
        }
        _ => None,
    };
    let width_dots: u32 = p.range(&key("width_dots"), r.width_dots, 128, 2048, "dots");
    if !width_dots.is_multiple_of(8) {
        p.push(format!(
            "{} = {width_dots}: expected a multiple of 8 (576 for 80 mm paper, 384 for 58 mm)",
            key("width_dots")
        ));
    }
    let encoding = match encoding_rs::Encoding::for_label(r.encoding.as_bytes()) {
        // Only encodings text can be written in (UTF-16 and "replacement" decode only).
        Some(e) if e.output_encoding() == e => Some(e),
        _ => {
            p.push(format!(
                "{} = {:?}: expected a text encoding the printer's font uses, such as \"gb18030\", \"gbk\", \"big5\" or \"utf-8\"",
                key("encoding"),
                r.encoding
            ));
            None
        }
    };
    let mut auto = Vec::new();
    for (i, a) in r.auto.iter().enumerate() {
        let what = p.choice(
            &key(&format!("auto[{i}]")),
            a,
            &[
                ("accept", Some(AutoPrint::Accept)),
                ("drop", Some(AutoPrint::Drop)),
                ("handover", Some(AutoPrint::Handover)),
            ],
            None,
        );
        auto.extend(what);
    }
    Some(PrinterConfig {
        link: link?,
        width_dots,
        encoding: encoding?,
        auto,
    })
}

/// An absolute path to a device (it need not exist yet: devices come and go).
fn device_path(p: &mut Problems, key: &str, value: &str) -> Option<PathBuf> {
    if value.starts_with('/') {
        Some(PathBuf::from(value))
    } else {
        p.push(format!(
            "{key} = {value:?}: expected an absolute device path such as /dev/ttyACM0 or /dev/input/by-id/…-event-kbd"
        ));
        None
    }
}

fn baud(p: &mut Problems, key: &str, value: i64) -> u32 {
    match u32::try_from(value) {
        Ok(b) if BAUD_RATES.contains(&b) => b,
        _ => {
            let rates: Vec<String> = BAUD_RATES.iter().map(u32::to_string).collect();
            p.push(format!(
                "{key} = {value}: expected one of {}",
                rates.join(", ")
            ));
            9600
        }
    }
}

/// `host:port`; the host is resolved when the printer is used (it may be
/// a name the kiosk's network resolves later).
fn tcp_address(p: &mut Problems, key: &str, value: &str) -> Option<String> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
    if ok {
        Some(value.to_owned())
    } else {
        p.push(format!(
            "{key} = {value:?}: expected host:port such as 192.168.1.50:9100"
        ));
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.toml");
        std::fs::write(&path, text).unwrap();
        Config::load_with_env(Some(&path), []).map_err(|e| e.to_string())
    }

    /// The commented-out `[hardware]` example in config/yizhan.toml, with
    /// its comment marks taken off, is a valid configuration: the docs
    /// name the keys the code reads.
    #[test]
    fn the_documented_example_is_valid() {
        let example: String = crate::config::DEFAULT_TOML
            .lines()
            .skip_while(|l| !l.starts_with("# [[hardware.scanners]]"))
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(example.contains("[hardware.printer]"), "{example}");
        let c = load(&example).unwrap();
        assert_eq!(c.hardware.scanners[0].name, "counter");
        assert!(c.hardware.camera.is_some() && c.hardware.printer.is_some());
    }

    #[test]
    fn no_hardware_by_default() {
        let c = Config::defaults().unwrap();
        assert!(c.hardware.scanners.is_empty());
        assert!(c.hardware.camera.is_none() && c.hardware.printer.is_none());
    }

    #[test]
    fn devices_as_spec_section_10_writes_them() {
        let c = load(
            "[[hardware.scanners]]\nname = \"counter\"\nkind = \"serial\"\npath = \"/dev/ttyACM0\"\nbaud = 9600\nchannel = \"clerk\"\n\
             [[hardware.scanners]]\nname = \"kiosk\"\nkind = \"evdev\"\npath = \"/dev/input/by-id/x-event-kbd\"\nchannel = \"self\"\n\
             [hardware.camera]\ndevice = \"/dev/video0\"\ndecode = true\n\
             [hardware.printer]\nkind = \"tcp\"\naddress = \"192.168.1.50:9100\"\nwidth_dots = 576\nencoding = \"gb18030\"\nauto = [\"accept\", \"drop\"]\n",
        )
        .unwrap();
        let h = &c.hardware;
        assert_eq!(h.scanners.len(), 2);
        assert_eq!(h.scanners[1].channel, crate::parcel::Channel::SelfService);
        assert!(h.camera.as_ref().unwrap().decode);
        let p = h.printer.as_ref().unwrap();
        assert_eq!(p.encoding, encoding_rs::GB18030);
        assert!(p.prints(super::AutoPrint::Drop) && !p.prints(super::AutoPrint::Handover));
    }

    #[test]
    fn every_hardware_problem_is_named() {
        let err = load(
            "[[hardware.scanners]]\nname = \"a b\"\nkind = \"bluetooth\"\npath = \"ttyACM0\"\nbaud = 1234\nchannel = \"both\"\n\
             [[hardware.scanners]]\nname = \"x\"\nkind = \"serial\"\npath = \"/dev/x\"\nchannel = \"clerk\"\n\
             [[hardware.scanners]]\nname = \"x\"\nkind = \"serial\"\npath = \"/dev/y\"\nchannel = \"clerk\"\n",
        )
        .unwrap_err();
        for want in [
            "hardware.scanners[0].name = \"a b\"",
            "hardware.scanners[0].kind = \"bluetooth\"",
            "hardware.scanners[0].path = \"ttyACM0\"",
            "hardware.scanners[0].baud = 1234",
            "hardware.scanners[0].channel = \"both\"",
            "hardware.scanners[2].name = \"x\": expected each scanner name once",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = load("[hardware.camera]\ndevice = \"/dev/video0\"\ncolor = 1\n").unwrap_err();
        assert!(err.contains("color"), "{err}");
        let err = load("[hardware.scale]\npath = \"ttyUSB0\"\nbaud = 7\n").unwrap_err();
        for want in [
            "hardware.scale.path = \"ttyUSB0\"",
            "hardware.scale.baud = 7",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let c = load("[hardware.scale]\npath = \"/dev/ttyUSB0\"\n").unwrap();
        let scale = c.hardware.scale.expect("a scale");
        assert_eq!(
            (scale.path.to_str(), scale.baud),
            (Some("/dev/ttyUSB0"), 9600)
        );
        let err = load(
            "[hardware.printer]\nkind = \"tcp\"\naddress = \"printer\"\nwidth_dots = 577\nencoding = \"klingon\"\nauto = [\"always\"]\n",
        )
        .unwrap_err();
        for want in [
            "hardware.printer.address = \"printer\"",
            "hardware.printer.width_dots = 577",
            "hardware.printer.encoding = \"klingon\"",
            "hardware.printer.auto[0] = \"always\"",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }
}
