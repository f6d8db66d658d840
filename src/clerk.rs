//! Clerks and their sessions (SPEC §7, §12): who may change a parcel
//! beyond the self-service path.
//!
//! # Invariants
//! - A PIN is stored only as an Argon2id hash; it is never logged.
//! - A session token is 32 random bytes, handed out once; the station keeps
//!   only its SHA-256, in memory. A session ends after `api.session_idle_min`
//!   without a request, on logout, when its clerk is disabled, and when the
//!   daemon restarts (clerks log in again; nothing else is lost).
//! - Wrong PINs are throttled per clerk id and station-wide (see
//!   [`Throttle`]), so guessing a 4-digit PIN takes days, not minutes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock;
use crate::db::DbError;

/// A clerk command or login that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClerkError {
    #[error("clerk id {0:?} must be 1-32 letters, digits, '-' or '_'")]
    InvalidId(String),
    #[error("the clerk's name must be 1-64 characters")]
    InvalidName,
    #[error("the PIN must be 4-12 digits")]
    InvalidPin,
    #[error("clerk {0} already exists")]
    Exists(String),
    #[error("no clerk {0}")]
    NotFound(String),
    #[error("could not hash the PIN: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ClerkError {
    fn from(e: rusqlite::Error) -> Self {
        ClerkError::Db(e.into())
    }
}

/// A clerk as listed (never with the PIN hash).
#[derive(Debug, Clone, Serialize)]
pub struct Clerk {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// Checks a clerk id as typed by an operator or sent by the screen.
pub fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Argon2id with the OWASP minimum (19 MiB, 2 passes): ~0.1 s on a Pi 4,
/// which is what makes a stolen database slow to brute-force.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// Hashes a PIN into a PHC string.
pub fn hash_pin(pin: &str) -> Result<String, ClerkError> {
    if !valid_pin(pin) {
        return Err(ClerkError::InvalidPin);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ClerkError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ClerkError::Hash(e.to_string()))?;
    hasher()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ClerkError::Hash(e.to_string()))
}

/// Whether `pin` matches `phc`; a malformed hash matches nothing.
pub fn verify_pin(phc: &str, pin: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| hasher().verify_password(pin.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Adds a clerk with a PIN.
pub fn add(conn: &Connection, id: &str, name: &str, pin: &str) -> Result<Clerk, ClerkError> {
    if !valid_id(id) {
        return Err(ClerkError::InvalidId(id.to_owned()));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ClerkError::InvalidName);
    }
    let hash = hash_pin(pin)?;
    let now = clock::now_string();
    let inserted = conn.execute(
        "INSERT INTO clerks (id, name, pin_hash, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO NOTHING",
        params![id, name, hash, now],
    )?;
    if inserted == 0 {
        return Err(ClerkError::Exists(id.to_owned()));
    }
    Ok(Clerk {
        id: id.to_owned(),
        name: name.to_owned(),
        created_at: now,
        disabled_at: None,
    })
}

/// Every clerk, enabled first.
pub fn list(conn: &Connection) -> Result<Vec<Clerk>, ClerkError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, created_at, disabled_at FROM clerks
         ORDER BY disabled_at IS NOT NULL, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Clerk {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
            disabled_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Disables a clerk (idempotent); their sessions end at their next request.
pub fn disable(conn: &Connection, id: &str) -> Result<(), ClerkError> {
    let n = conn.execute(
        "UPDATE clerks SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
        params![id, clock::now_string()],
    )?;
    if n == 0 {
        return Err(ClerkError::NotFound(id.to_owned()));
    }
    Ok(())
}

/// The PIN hash and name of an enabled clerk.
pub fn credentials(conn: &Connection, id: &str) -> Result<Option<(String, String)>, DbError> {
    Ok(conn
        .prepare_cached("SELECT pin_hash, name FROM clerks WHERE id = ?1 AND disabled_at IS NULL")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether a clerk exists and is enabled.
pub fn enabled(conn: &Connection, id: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM clerks WHERE id = ?1 AND disabled_at IS NULL")?
        .exists([id])?)
}

/// A logged-in clerk.
#[derive(Debug, Clone)]
pub struct Session {
    pub clerk_id: String,
    pub name: String,
    last_seen: Instant,
    /// When the clerk was last seen enabled in the database.
    checked_at: Instant,
}

/// How long a session trusts its last look at the clerks table. Clerks
/// are disabled by `yizhan clerk disable`, another process, so the daemon
/// cannot be told; it looks again at most this long after the last look
/// rather than on every request (a read per request cost a fifth of the
/// accept rate, see docs/PERFORMANCE.md).
pub const ENABLED_RECHECK: Duration = Duration::from_secs(1);

impl Session {
    /// Whether the clerk must be looked up again before this request.
    pub fn needs_check(&self, now: Instant) -> bool {
        now.duration_since(self.checked_at) >= ENABLED_RECHECK
    }
}

/// The live sessions, by the SHA-256 of their token.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token (64 hex characters).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(hex::encode(raw))
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding this lock leaves a plain map behind; keep going.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session and returns its token.
    pub fn open(&self, clerk_id: &str, name: &str) -> Result<String, getrandom::Error> {
        self.open_at(clerk_id, name, Instant::now())
    }

    /// [`Sessions::open`] at `now` (tests give the time instead of sleeping).
    fn open_at(
        &self,
        clerk_id: &str,
        name: &str,
        now: Instant,
    ) -> Result<String, getrandom::Error> {
        let token = new_token()?;
        let mut live = self.lock();
        live.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
        live.insert(
            digest(&token),
            Session {
                clerk_id: clerk_id.to_owned(),
                name: name.to_owned(),
                last_seen: now,
                checked_at: now,
            },
        );
        Ok(token)
    }

    /// The session of `token` if it is live; a use keeps it alive.
    pub fn touch(&self, token: &str) -> Option<Session> {
        self.touch_at(token, Instant::now())
    }

    /// [`Sessions::touch`] at `now`.
    fn touch_at(&self, token: &str, now: Instant) -> Option<Session> {
        let key = digest(token);
        let mut live = self.lock();
        let session = live.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= self.idle {
            live.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Records that the clerk of `token` was just seen enabled.
    pub fn checked(&self, token: &str, at: Instant) {
        if let Some(s) = self.lock().get_mut(&digest(token)) {
            s.checked_at = s.checked_at.max(at);
        }
    }

    /// Ends one session (logout).
    pub fn close(&self, token: &str) -> bool {
        self.lock().remove(&digest(token)).is_some()
    }

    /// Ends every session of a clerk (disabled).
    pub fn close_clerk(&self, clerk_id: &str) {
        self.lock().retain(|_, s| s.clerk_id != clerk_id);
    }
}

/// Wrong-PIN throttling that cannot lock the clerks out.
///
/// - A clerk id that exists: [`FREE_TRIES`] wrong PINs, then a lock of 30 s
///   that doubles with each further failure up to 15 min. Only that clerk
///   is held back; a correct PIN resets the count.
/// - Ids that do not exist, per client address: more than
///   [`UNKNOWN_IDS_PER_MIN`] in a minute (someone cycling through made-up
///   ids) locks that client's logins with unknown ids for a minute. A real
///   clerk's login, even from the same screen, is judged by its own count
///   alone (issue 19: the station-wide lock this replaces let anyone at the
///   customer screen lock every clerk out).
///
/// Every lock is logged when it starts.
#[derive(Debug, Default)]
pub struct Throttle {
    inner: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    per_clerk: HashMap<String, Failures>,
    per_client: HashMap<IpAddr, ClientFailures>,
    lockouts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

#[derive(Debug, Default)]
struct ClientFailures {
    recent: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Who is trying to log in: an id that exists, or one that does not (from
/// which client).
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    Known(&'a str),
    Unknown(IpAddr),
}

pub const FREE_TRIES: u32 = 5;
pub const UNKNOWN_IDS_PER_MIN: usize = 20;
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
const MINUTE: Duration = Duration::from_secs(60);

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while logins for this claim are locked.
    pub fn check(&self, claim: Claim<'_>) -> Result<(), Duration> {
        let now = Instant::now();
        let st = self.lock();
        let until = match claim {
            Claim::Known(id) => st.per_clerk.get(id).and_then(|f| f.locked_until),
            Claim::Unknown(ip) => st.per_client.get(&ip).and_then(|c| c.locked_until),
        };
        match until.filter(|u| *u > now) {
            Some(u) => Err(u - now),
            None => Ok(()),
        }
    }

    /// Records a wrong PIN for a clerk, or a made-up id from a client.
    pub fn failed(&self, claim: Claim<'_>) {
        let now = Instant::now();
        let mut st = self.lock();
        match claim {
            Claim::Known(id) => {
                let f = st.per_clerk.entry(id.to_owned()).or_insert(Failures {
                    count: 0,
                    locked_until: None,
                    last: now,
                });
                f.count += 1;
                f.last = now;
                if f.count >= FREE_TRIES {
                    let doublings = (f.count - FREE_TRIES).min(10);
                    let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
                    f.locked_until = Some(now + lock);
                    let count = f.count;
                    st.lockouts += 1;
                    tracing::warn!(
                        clerk_id = id,
                        wrong_pins = count,
                        lock_s = lock.as_secs(),
                        "clerk login locked after wrong PINs"
                    );
                }
            }
            Claim::Unknown(ip) => {
                if st.per_client.len() > 10_000 {
                    st.per_client.retain(|_, c| {
                        c.recent
                            .last()
                            .is_some_and(|t| now.duration_since(*t) < MINUTE)
                    });
                }
                let c = st.per_client.entry(ip).or_default();
                c.recent.retain(|t| now.duration_since(*t) < MINUTE);
                c.recent.push(now);
                if c.recent.len() > UNKNOWN_IDS_PER_MIN && c.locked_until.is_none_or(|u| u <= now) {
                    c.locked_until = Some(now + MINUTE);
                    st.lockouts += 1;
                    tracing::warn!(client = %ip, "logins with unknown clerk ids from this client locked for a minute (someone trying made-up ids); real clerks can still log in");
                }
            }
        }
    }

    /// A correct PIN: the clerk's count starts over.
    pub fn succeeded(&self, clerk_id: &str) {
        self.lock().per_clerk.remove(clerk_id);
    }

    /// Locks started since the daemon started (a metric).
    pub fn lockouts(&self) -> u64 {
        self.lock().lockouts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hash_and_verify() {
        let h = hash_pin("2468").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_pin(&h, "2468"));
        assert!(!verify_pin(&h, "2469"));
        assert!(!verify_pin("not a hash", "2468"));
        assert_ne!(hash_pin("2468").unwrap(), h, "salted");
        for bad in ["", "123", "12a4", "1234567890123", " 1234"] {
            assert!(
                matches!(hash_pin(bad), Err(ClerkError::InvalidPin)),
                "{bad}"
            );
        }
    }

    #[test]
    fn clerk_ids() {
        for ok in ["c1", "ZHANG_wei-2", &"a".repeat(32)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "a b", "王", &"a".repeat(33), "x;y"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_close() {
        // The clock is given, not slept on: a slow machine (qemu in CI)
        // cannot make a live session look idle.
        let idle = Duration::from_secs(60);
        let s = Sessions::new(idle);
        let t0 = Instant::now();
        let t = s.open_at("c1", "Wei", t0).unwrap();
        assert_eq!(t.len(), 64);
        let later = t0 + Duration::from_secs(50);
        assert_eq!(s.touch_at(&t, later).unwrap().clerk_id, "c1");
        assert!(s.touch_at("nope", later).is_none());
        assert!(
            s.touch_at(&t, later + idle - Duration::from_millis(1))
                .is_some(),
            "a use keeps it alive"
        );
        assert!(
            s.touch_at(&t, later + idle * 3).is_none(),
            "expired after idle"
        );
        let t2 = s.open("c1", "Wei").unwrap();
        let t3 = s.open("c2", "Li").unwrap();
        s.close_clerk("c1");
        assert!(s.touch(&t2).is_none());
        assert!(s.close(&t3));
        assert!(s.touch(&t3).is_none());
    }

    #[test]
    fn sessions_look_at_the_clerk_again_after_the_recheck_interval() {
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.open("c1", "Wei").unwrap();
        let now = Instant::now();
        let session = s.touch(&t).unwrap();
        assert!(!session.needs_check(now), "just logged in: just checked");
        let later = now + ENABLED_RECHECK;
        assert!(session.needs_check(later));
        s.checked(&t, later);
        assert!(!s.touch(&t).unwrap().needs_check(later));
        assert!(s.touch(&t).unwrap().needs_check(later + ENABLED_RECHECK));
        // An older look never replaces a newer one.
        s.checked(&t, now);
        assert!(!s.touch(&t).unwrap().needs_check(later));
    }

    #[test]
    fn wrong_pins_lock_the_clerk_and_made_up_ids_only_their_client() {
        let th = Throttle::default();
        let wei = Claim::Known("wei");
        for _ in 0..FREE_TRIES - 1 {
            th.failed(wei);
            assert!(th.check(wei).is_ok());
        }
        th.failed(wei);
        let wait = th.check(wei).unwrap_err();
        assert!(wait > Duration::from_secs(25), "{wait:?}");
        assert!(
            th.check(Claim::Known("li")).is_ok(),
            "other clerks unaffected"
        );
        th.failed(wei);
        assert!(
            th.check(wei).unwrap_err() > Duration::from_secs(55),
            "doubles"
        );
        th.succeeded("wei");
        assert!(th.check(wei).is_ok());
        let kiosk: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..=UNKNOWN_IDS_PER_MIN {
            th.failed(Claim::Unknown(kiosk));
        }
        assert!(
            th.check(Claim::Unknown(kiosk)).is_err(),
            "cycling made-up ids"
        );
        assert!(
            th.check(Claim::Unknown([10, 0, 0, 9].into())).is_ok(),
            "per client"
        );
        assert!(
            th.check(wei).is_ok(),
            "a real clerk from the same screen is not held back"
        );
        assert_eq!(th.lockouts(), 3);
    }
}
