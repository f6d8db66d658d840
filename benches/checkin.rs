//! The station's two speed figures, each beside a bare-SQLite baseline run
//! in the same process, on the same disk, in alternating rounds:
//!
//! 1. Durable check-in commits per second through the HTTP API (the
//!    `accept` that puts a parcel in custody: one fsync'd transaction with
//!    its outbox event), against a bare rusqlite loop of one-row
//!    transactions on a connection with the station's own pragmas. Beside
//!    them: the WAL frames each commit writes, and what the disk alone
//!    takes to append and flush that many (no SQLite), paired the same way.
//! 2. Scan-decision latency (p50/p99) with 100 000 parcels and 100 000
//!    manifest entries in the database, through the API and in-process,
//!    against the two bare indexed lookups a decision needs.
//!
//! `cargo bench --bench checkin` (add `-- --quick` for a smoke run). The
//! data directory is a temporary one under `YIZHAN_BENCH_DIR` (default:
//! `target/tmp`); put it on the disk you want measured. Figures and how
//! to read them: docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use image::ImageEncoder;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use yizhan::config::Config;
use yizhan::db::{self, Durability};
use yizhan::parcel::Channel;
use yizhan::station::Station;

struct Sizes {
    rounds: usize,
    commits: usize,
    catalogue: usize,
    scans: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            rounds: 1,
            commits: 30,
            catalogue: 5_000,
            scans: 200,
        }
    } else {
        Sizes {
            rounds: 7,
            commits: 300,
            catalogue: 100_000,
            scans: 3_000,
        }
    };
    let base: std::path::PathBuf = std::env::var_os("YIZHAN_BENCH_DIR")
        .map_or_else(|| env!("CARGO_TARGET_TMPDIR").into(), Into::into);
    let dir = tempfile::tempdir_in(&base).expect("bench dir");
    println!(
        "yizhan benchmark: data in {} (SQLite {})",
        base.display(),
        rusqlite::version()
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    commit_rate(dir.path(), &sizes);
    scan_latency(dir.path(), &sizes);
}

// ---------------------------------------------------------------- part 1

fn commit_rate(dir: &std::path::Path, sizes: &Sizes) {
    println!(
        "\n## Durable commits per second ({} per measurement, {} rounds)",
        sizes.commits, sizes.rounds
    );
    println!(
        "Each yizhan measurement runs right after its own baseline run, and its \
         ratio is to that baseline (this VM's disk speed drifts by tens of \
         per cent between seconds)."
    );
    let server = Server::start(&dir.join("commit-station"));
    let n = sizes.commits;
    let mut bare = BareLoop::open(&dir.join("bare.db"), n);
    let mut shape = AcceptShaped::open(&dir.join("accept-shaped.db"), n, sizes.rounds);
    // The pages each commit appends to the WAL, and what the disk alone
    // takes to flush that many (see `DiskOnly`).
    let base_frames = bare.frames_per_commit();
    let shape_frames = shape.frames_per_commit();
    let station_frames = station_frames_per_accept(&server);
    let mut disk = DiskOnly::create(&dir.join("disk-only.bin"));
    let mut disk_pairs = Vec::new();
    let mut cold_runs = 0;
    let mut cold = Vec::new();
    let mut paired = |measure: &mut dyn FnMut() -> f64| -> Pair {
        // For comparison only: the same loop into a fresh file, whose WAL
        // grows with every commit.
        cold_runs += 1;
        let mut fresh = BareLoop::create(&dir.join(format!("bare-cold-{cold_runs}.db")));
        cold.push(fresh.rate(n));
        Pair {
            base: bare.warm_rate(n),
            rate: measure(),
        }
    };
    let mut api = Vec::new();
    let mut conc = Vec::new();
    let mut inproc = Vec::new();
    let mut full = Vec::new();
    let mut shaped = Vec::new();
    for round in 0..sizes.rounds {
        api.push(paired(&mut || api_accept_rate(&server, round, n)));
        conc.push(paired(&mut || {
            api_concurrent_accept_rate(&server, round, n)
        }));
        inproc.push(paired(&mut || inproc_accept_rate(&server, round, n)));
        full.push(paired(&mut || api_full_checkin_rate(&server, round, n)));
        shaped.push(paired(&mut || shape.rate(n)));
        disk_pairs.push(Pair {
            base: disk.rate(base_frames, n),
            rate: disk.rate(station_frames, n),
        });
        println!(
            "round {round}: api accept {}  {CLIENTS} clients {}  in-process {}  whole check-in {}  bare accept-shaped transaction {}  disk only {}",
            api[round], conc[round], inproc[round], full[round], shaped[round], disk_pairs[round]
        );
    }
    let bases: Vec<f64> = [&api, &conc, &inproc, &full, &shaped]
        .iter()
        .flat_map(|v| v.iter().map(|p| p.base))
        .collect();
    let base = median(bases);
    println!("| measure | commits/s (median) | % of its paired baseline (median) |");
    println!("|---|---|---|");
    println!(
        "| baseline: bare rusqlite insert, one row per fsync'd transaction, WAL allocated (as the station's) | {base:.0} | 100 % |"
    );
    println!(
        "| for comparison: the same loop into a fresh file (its WAL grows with every commit) | {:.0} | {:.0} % of the median baseline |",
        median(cold.clone()),
        100.0 * median(cold) / base
    );
    for (name, pairs) in [
        (
            "yizhan: `POST /accept` over HTTP (parcel + outbox event, fsync'd)".to_owned(),
            &api,
        ),
        (
            format!("yizhan: `POST /accept`, {CLIENTS} clients at once (group commit)"),
            &conc,
        ),
        (
            "yizhan: `Station::accept` in-process, one at a time".to_owned(),
            &inproc,
        ),
        (
            "yizhan: whole check-in (scan + photo + accept) over HTTP, one at a time".to_owned(),
            &full,
        ),
        (
            "for comparison: a bare transaction with an accept's writes (no station code)"
                .to_owned(),
            &shaped,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} % |",
            median(pairs.iter().map(|p| p.rate).collect()),
            median(pairs.iter().map(|p| 100.0 * p.rate / p.base).collect()),
        );
    }
    println!(
        "\nWAL frames per commit: baseline {base_frames}, bare accept-shaped transaction \
         {shape_frames}, `Station::accept` {station_frames}. The disk alone (no SQLite: that many frames appended to a file, \
         then fdatasync), paired the same way:"
    );
    println!(
        "| disk only | flushes/s (median) | % of the baseline's {base_frames} frames (median) |"
    );
    println!("|---|---|---|");
    println!(
        "| {base_frames} frames per flush (the baseline's) | {:.0} | 100 % |",
        median(disk_pairs.iter().map(|p| p.base).collect())
    );
    println!(
        "| {station_frames} frames per flush (`Station::accept`'s) | {:.0} | {:.0} % |",
        median(disk_pairs.iter().map(|p| p.rate).collect()),
        median(disk_pairs.iter().map(|p| 100.0 * p.rate / p.base).collect()),
    );
}

/// WAL frames (pages) one commit appends: `commits` commits run right
/// after a complete checkpoint, so the log restarts at the top with the
/// first of them, then a checkpoint reports how many frames the log holds.
/// `commits` stays under the 1 000-frame auto-checkpoint.
fn wal_frames_per_commit(conn: &rusqlite::Connection, commits: usize) -> usize {
    let log: i64 = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .expect("checkpoint");
    (log as f64 / commits as f64).round() as usize
}

/// WAL frames one in-process accept appends (as `wal_frames_per_commit`):
/// the station's own final checkpoint (`Db::checkpoint`, which waits out
/// its checkpoint thread) empties the log first, so it restarts with the
/// first accept; the count is read on a connection of our own.
fn station_frames_per_accept(server: &Server) -> usize {
    let conn = db::open_connection(&server.db_path, false).expect("station db");
    let ids = server.drafts_with_photo("W", 0, FRAME_COUNT_COMMITS);
    server.station.db().checkpoint().expect("checkpoint");
    for (i, id) in ids.iter().enumerate() {
        let input: yizhan::checkin::AcceptInput =
            serde_json::from_value(json!({"waybill_no": waybill(9, 0, i)})).expect("input");
        let id = yizhan::parcel::ParcelId::parse(id).expect("id");
        server
            .rt
            .block_on(server.station.accept(&id, input))
            .expect("accept");
    }
    wal_frames_per_commit(&conn, FRAME_COUNT_COMMITS)
}

/// Commits per frame count (`wal_frames_per_commit`).
const FRAME_COUNT_COMMITS: usize = 50;

/// The disk without SQLite: what it takes to append `frames` WAL frames
/// to an allocated file and `fdatasync` it, as a WAL commit with
/// `synchronous=FULL` does: each frame is a 24-byte header and a 4 096-byte
/// page, written as two `pwrite`s, after the file's 32-byte header. How much
/// longer an accept's frames take to flush than the baseline's bounds how
/// close an accept can come to the baseline on this disk, whatever its CPU.
struct DiskOnly {
    file: std::fs::File,
    at: u64,
}

const WAL_HEADER: u64 = 32;
const FRAME_HEADER: usize = 24;
const PAGE: usize = 4096;
const WAL_FRAME: usize = FRAME_HEADER + PAGE;
const DISK_ONLY_LEN: u64 = 4 << 20;

impl DiskOnly {
    fn create(path: &std::path::Path) -> DiskOnly {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(path).expect("disk-only file");
        // Allocated like the station's WAL: written once, flushed.
        let chunk = vec![0u8; 1 << 20];
        for i in 0..DISK_ONLY_LEN / chunk.len() as u64 {
            file.write_all_at(&chunk, i * chunk.len() as u64)
                .expect("allocate");
        }
        file.sync_all().expect("sync");
        DiskOnly {
            file,
            at: WAL_HEADER,
        }
    }

    fn rate(&mut self, frames: usize, n: usize) -> f64 {
        use std::os::unix::fs::FileExt;
        let header = [0x5au8; FRAME_HEADER];
        let page = [0xa5u8; PAGE];
        let start = Instant::now();
        for _ in 0..n {
            if self.at + (frames * WAL_FRAME) as u64 > DISK_ONLY_LEN {
                self.at = WAL_HEADER;
            }
            for _ in 0..frames {
                self.file.write_all_at(&header, self.at).expect("write");
                self.file
                    .write_all_at(&page, self.at + FRAME_HEADER as u64)
                    .expect("write");
                self.at += WAL_FRAME as u64;
            }
            self.file.sync_data().expect("fdatasync");
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

/// A yizhan rate and the baseline rate measured just before it.
struct Pair {
    base: f64,
    rate: f64,
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}/s ({:.0} % of {:.0})",
            self.rate,
            100.0 * self.rate / self.base,
            self.base
        )
    }
}

/// The baseline: one small row per transaction, same pragmas as the
/// station, in the same state of its WAL file.
///
/// A station's WAL file stays allocated: its checkpoints restart the log
/// from the top of the file rather than truncating it, so its commits
/// overwrite blocks in place. A commit that extends the file instead also
/// makes its fsync write the file's metadata: on this VM the same loop runs
/// ~1.5x faster into an allocated WAL than into a fresh file. So the
/// baseline runs on one long-lived file, warmed up first and checkpointed
/// before each run (the fresh-file figure is printed beside it).
struct BareLoop {
    conn: rusqlite::Connection,
}

impl BareLoop {
    fn create(path: &std::path::Path) -> BareLoop {
        let conn = db::open_connection(path, false).expect("bare db");
        conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT")
            .expect("create");
        BareLoop { conn }
    }

    /// A file whose WAL is allocated for runs of `n` commits.
    fn open(path: &std::path::Path, n: usize) -> BareLoop {
        let mut bare = BareLoop::create(path);
        bare.rate(n);
        bare
    }

    /// Commits/s of `n` commits, the WAL restarting at the top of its file.
    fn warm_rate(&mut self, n: usize) -> f64 {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpoint");
        self.rate(n)
    }

    fn frames_per_commit(&mut self) -> usize {
        self.warm_rate(FRAME_COUNT_COMMITS);
        wal_frames_per_commit(&self.conn, FRAME_COUNT_COMMITS)
    }

    fn rate(&mut self, n: usize) -> f64 {
        let body = "x".repeat(300);
        let start = Instant::now();
        for _ in 0..n {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begin");
            tx.execute(
                "INSERT INTO t (id, body) VALUES (?1, ?2)",
                (ulid::Ulid::new().to_string(), &body),
            )
            .expect("insert");
            tx.commit().expect("commit");
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

/// What an accept must write, as bare SQL on the station's pragmas and
/// with its tables' shape: the parcel's row and the three indexes its
/// state and waybill change (custody per return, per waybill, by state),
/// the `seq` counter, the event row with its unique id, the event body and
/// the delivery queue. Runs on its own warm file, like the baseline,
/// against 100 000 drafts: the most the station's accept can reach without
/// writing less (the "floor" of what it writes).
struct AcceptShaped {
    conn: rusqlite::Connection,
    drafts: Vec<String>,
    next: usize,
}

impl AcceptShaped {
    fn open(path: &std::path::Path, n: usize, rounds: usize) -> AcceptShaped {
        let mut conn = db::open_connection(path, false).expect("shaped db");
        conn.execute_batch(
            "CREATE TABLE parcels (id TEXT PRIMARY KEY, return_no TEXT NOT NULL,
                                   state TEXT NOT NULL, waybill_no TEXT,
                                   created_at TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT;
             CREATE UNIQUE INDEX parcels_one_per_return ON parcels (return_no)
                 WHERE state IN ('dropped', 'accepted', 'handed_over', 'held');
             CREATE UNIQUE INDEX parcels_one_per_waybill ON parcels (waybill_no)
                 WHERE state = 'accepted';
             CREATE INDEX parcels_state ON parcels (state, created_at);
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
             INSERT INTO counters VALUES ('event_seq', 0);
             CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
                                  occurred_at TEXT NOT NULL) STRICT;
             CREATE TABLE event_bodies (seq INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;
             CREATE TABLE outbox_pending (seq INTEGER PRIMARY KEY) STRICT;",
        )
        .expect("schema");
        let tx = conn.transaction().expect("begin");
        let mut drafts = Vec::new();
        for i in 0..100_000 {
            let id = ulid::Ulid::new().to_string();
            tx.execute(
                "INSERT INTO parcels (id, return_no, state, created_at, updated_at)
                 VALUES (?1, ?2, 'draft', ?3, ?3)",
                (
                    &id,
                    format!("RT{i:09}"),
                    format!("2026-11-23T00:00:{i:09}Z"),
                ),
            )
            .expect("draft");
            drafts.push(id);
        }
        tx.commit().expect("commit");
        // Spread over the table, as a counter's parcels are.
        drafts.sort_by_key(|id| id.bytes().rev().collect::<Vec<_>>());
        assert!(
            drafts.len() >= n * (rounds + 1) + FRAME_COUNT_COMMITS,
            "enough drafts"
        );
        let mut shaped = AcceptShaped {
            conn,
            drafts,
            next: 0,
        };
        shaped.rate(n); // allocate the WAL, as the station's is
        shaped
    }

    fn frames_per_commit(&mut self) -> usize {
        self.rate(FRAME_COUNT_COMMITS);
        wal_frames_per_commit(&self.conn, FRAME_COUNT_COMMITS)
    }

    fn rate(&mut self, n: usize) -> f64 {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpoint");
        let body = "x".repeat(560);
        let start = Instant::now();
        for _ in 0..n {
            let id = &self.drafts[self.next];
            let waybill = format!("SF{:012}", self.next);
            self.next += 1;
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begin");
            let run = || -> rusqlite::Result<()> {
                tx.prepare_cached(
                    "UPDATE parcels SET state = 'accepted', waybill_no = ?2, updated_at = 'now'
                     WHERE id = ?1 AND state = 'draft'",
                )?
                .execute((id, &waybill))?;
                tx.prepare_cached(
                    "UPDATE counters SET value = value + 1 WHERE name = 'event_seq'",
                )?
                .execute([])?;
                let seq: i64 = tx
                    .prepare_cached("SELECT value FROM counters WHERE name = 'event_seq'")?
                    .query_row([], |r| r.get(0))?;
                tx.prepare_cached(
                    "INSERT INTO events (seq, event_id, occurred_at) VALUES (?1, ?2, 'now')",
                )?
                .execute((seq, ulid::Ulid::new().to_string()))?;
                tx.prepare_cached("INSERT INTO event_bodies (seq, body) VALUES (?1, ?2)")?
                    .execute((seq, &body))?;
                tx.prepare_cached("INSERT INTO outbox_pending (seq) VALUES (?1)")?
                    .execute([seq])?;
                Ok(())
            };
            run().expect("accept-shaped writes");
            tx.commit().expect("commit");
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

/// Drafts with photos are prepared untimed; the accepts are timed.
fn api_accept_rate(server: &Server, round: usize, n: usize) -> f64 {
    let ids = server.drafts_with_photo("A", round, n);
    let mut client = RawClient::connect(&server.base, &server.token);
    let start = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let body = json!({"waybill_no": waybill(1, round, i)}).to_string();
        assert_eq!(
            client.post(&format!("/api/v1/parcels/{id}/accept"), &body),
            200
        );
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Counters and kiosks at once: `CLIENTS` threads, each with its own
/// connection, accepting their share of `n` prepared drafts.
const CLIENTS: usize = 4;

fn api_concurrent_accept_rate(server: &Server, round: usize, n: usize) -> f64 {
    let ids = server.drafts_with_photo("C", round, n);
    let start = Instant::now();
    std::thread::scope(|s| {
        for (c, chunk) in ids.chunks(n.div_ceil(CLIENTS)).enumerate() {
            s.spawn(move || {
                let mut client = RawClient::connect(&server.base, &server.token);
                for (i, id) in chunk.iter().enumerate() {
                    let body = json!({"waybill_no": waybill(4 + c, round, i)}).to_string();
                    assert_eq!(
                        client.post(&format!("/api/v1/parcels/{id}/accept"), &body),
                        200
                    );
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// The same accepts without HTTP: `Station::accept` called directly.
fn inproc_accept_rate(server: &Server, round: usize, n: usize) -> f64 {
    let ids = server.drafts_with_photo("I", round, n);
    let start = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let input: yizhan::checkin::AcceptInput =
            serde_json::from_value(json!({"waybill_no": waybill(3, round, i)})).expect("input");
        let id = yizhan::parcel::ParcelId::parse(id).expect("id");
        server
            .rt
            .block_on(server.station.accept(&id, input))
            .expect("accept");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn api_full_checkin_rate(server: &Server, round: usize, n: usize) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let id = server.draft(&format!("RT-F{round}-{i:06}"));
        server.photo(&id, i as u8);
        server.accept(&id, &waybill(2, round, i));
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn waybill(kind: usize, round: usize, i: usize) -> String {
    format!("SF{kind}{round:02}{i:09}")
}

// ---------------------------------------------------------------- part 2

fn scan_latency(dir: &std::path::Path, sizes: &Sizes) {
    let n = sizes.catalogue;
    println!(
        "\n## Scan decision latency ({n} parcels, {n} manifest entries, {} scans per measure)",
        sizes.scans
    );
    let server = Server::start(&dir.join("scan-station"));
    let start = Instant::now();
    populate(&server.station, n);
    println!("populated in {:.1} s", start.elapsed().as_secs_f64());

    // Half the scans find a parcel already in custody (reject), half a
    // manifest entry still to come (accept, which opens a draft).
    let mut rng = fastrand::Rng::with_seed(7);
    let codes: Vec<String> = (0..sizes.scans)
        .map(|_| format!("RT-M-{:06}", rng.usize(0..n)))
        .collect();

    let mut bare = Vec::new();
    let mut inproc = Vec::new();
    let mut api = Vec::new();
    let lookup = db::open_connection(&server.station.config().db_path(), true).expect("reader");
    for _ in 0..sizes.rounds {
        bare.extend(codes.iter().map(|c| time(|| bare_lookup(&lookup, c))));
        inproc.extend(codes.iter().map(|c| {
            time(|| {
                server
                    .rt
                    .block_on(server.station.scan(c.clone().into_bytes(), Channel::Clerk))
                    .expect("scan");
            })
        }));
        api.extend(codes.iter().map(|c| time(|| drop(server.scan(c)))));
    }
    println!("| measure | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (name, v) in [
        (
            "baseline: bare indexed lookups (manifest row + custody check)",
            &mut bare,
        ),
        (
            "yizhan: scan decision in-process (`Station::scan`)",
            &mut inproc,
        ),
        ("yizhan: `POST /api/v1/scans` over HTTP", &mut api),
    ] {
        v.sort();
        println!(
            "| {name} | {} | {} | {} |",
            ms(pct(v, 50)),
            ms(pct(v, 99)),
            ms(*v.last().unwrap_or(&Duration::ZERO))
        );
    }
}

/// `n` manifest entries; parcels in custody for the first half of them and
/// for `n/2` returns outside the manifest (so `n` parcels in all).
fn populate(station: &Station, n: usize) {
    station
        .db()
        .write_blocking(Durability::Full, |tx| -> Result<(), db::DbError> {
            let now = "2026-11-22T00:00:00.000Z";
            let mut m = tx.prepare(
                "INSERT INTO returns (return_no, merchant_id, order_no, status, expires_at, phone_last4, items, updated_at)
                 VALUES (?1, 'M1', ?2, 'authorized', NULL, ?3, '[{\"sku\":\"S1\",\"name\":\"Shoes\",\"qty\":1}]', ?4)",
            )?;
            let mut p = tx.prepare(
                "INSERT INTO parcels (id, return_no, merchant_id, state, channel, source, waybill_no, carrier,
                                      receipt_id, receipt_at, custody_at, created_at, updated_at)
                 VALUES (?1, ?2, 'M1', 'accepted', 'clerk', 'manifest', ?3, 'SF', ?1, ?4, ?4, ?4, ?4)",
            )?;
            for i in 0..n {
                let rn = format!("RT-M-{i:06}");
                m.execute((&rn, format!("ORD-{i}"), format!("{:04}", i % 10_000), now))?;
                let custody_rn = if i < n / 2 { rn } else { format!("RT-X-{i:06}") };
                p.execute((ulid::Ulid::new().to_string(), custody_rn, format!("SF9{i:011}"), now))?;
            }
            Ok(())
        })
        .expect("populate");
    station.db().checkpoint().expect("checkpoint");
}

fn bare_lookup(conn: &rusqlite::Connection, rn: &str) {
    let mut m = conn
        .prepare_cached(
            "SELECT merchant_id, status, expires_at, items FROM returns WHERE return_no = ?1",
        )
        .expect("prepare");
    let row: Option<(String, String)> = m
        .query_row([rn], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(Some)
        .or_else(|e| {
            if e == rusqlite::Error::QueryReturnedNoRows {
                Ok(None)
            } else {
                Err(e)
            }
        })
        .expect("manifest lookup");
    let mut c = conn
        .prepare_cached("SELECT 1 FROM parcels WHERE return_no = ?1 AND state IN ('dropped', 'accepted', 'handed_over', 'held') LIMIT 1")
        .expect("prepare");
    let custody = c.exists([rn]).expect("custody lookup");
    std::hint::black_box((row, custody));
}

// ---------------------------------------------------------------- helpers

/// A station serving its API on a loopback port, plus an HTTP client.
struct Server {
    rt: tokio::runtime::Runtime,
    station: Station,
    /// The station's database file.
    db_path: std::path::PathBuf,
    base: String,
    client: Client,
    /// The bench clerk's session token.
    token: String,
    _stop: tokio::sync::watch::Sender<u32>,
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Server {
        let env = [
            ("YIZHAN_STORAGE__DATA_DIR", data_dir.display().to_string()),
            ("YIZHAN_STORAGE__MIN_FREE_MB", "0".to_owned()),
            ("YIZHAN_STATION__CLOCK_CHECK", "off".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let config = Config::load_with_env(None, env).expect("config");
        let station = Station::open(config).expect("station");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stops) = tokio::sync::watch::channel(0u32);
        rt.spawn(yizhan::daemon::run_on(station.clone(), listener, stops));
        // Clerk endpoints need a bearer token: a real clerk's session, so
        // the measured path includes the session check a counter pays.
        station
            .db()
            .with_writer_blocking(|c| yizhan::clerk::add(c, "bench", "Bench", "2468"))
            .expect("clerk");
        let login: Value = Client::new()
            .post(format!("{base}/api/v1/sessions"))
            .json(&json!({"clerk_id": "bench", "pin": "2468"}))
            .send()
            .and_then(|r| r.json())
            .expect("login");
        let token = login["token"].as_str().expect("token").to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("client");
        Server {
            rt,
            station,
            db_path: data_dir.join("yizhan.db"),
            base,
            client,
            token,
            _stop: stop,
        }
    }

    fn post(&self, path: &str, body: impl Into<reqwest::blocking::Body>) -> Value {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .expect("request");
        let status = r.status();
        let v: Value = r.json().expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    fn scan(&self, code: &str) -> Value {
        self.post(
            "/api/v1/scans",
            json!({"code": code, "channel": "clerk"}).to_string(),
        )
    }

    fn draft(&self, code: &str) -> String {
        let v = self.scan(code);
        v["parcel_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not accepted: {v}"))
            .to_owned()
    }

    fn photo(&self, id: &str, seed: u8) {
        self.post(
            &format!("/api/v1/parcels/{id}/photos?kind=label"),
            png(64, 48, seed),
        );
    }

    /// `n` drafts with a photo each, ready to accept (set-up, not timed).
    fn drafts_with_photo(&self, tag: &str, round: usize, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let id = self.draft(&format!("RT-{tag}{round}-{i:06}"));
                self.photo(&id, i as u8);
                id
            })
            .collect()
    }

    fn accept(&self, id: &str, waybill: &str) {
        self.post(
            &format!("/api/v1/parcels/{id}/accept"),
            json!({"waybill_no": waybill}).to_string(),
        );
    }
}

/// A bare HTTP/1.1 keep-alive client on one socket, so the measured cost is
/// the server's and not a client library's (reqwest's blocking client
/// hops through its own runtime thread on every call).
struct RawClient {
    stream: std::io::BufReader<std::net::TcpStream>,
    token: String,
}

impl RawClient {
    fn connect(base: &str, token: &str) -> RawClient {
        let addr = base.trim_start_matches("http://");
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream: std::io::BufReader::new(stream),
            token: token.to_owned(),
        }
    }

    /// POSTs a JSON body; returns the status code (the body is read and
    /// dropped).
    fn post(&mut self, path: &str, body: &str) -> u16 {
        use std::io::{BufRead, Read, Write};
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).expect("body");
        status
    }
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 ^ seed, y as u8, seed]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
        .expect("png");
    out
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
