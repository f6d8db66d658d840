-- 0001: the station core. Never edit once landed; add a new migration instead.

-- Small key/value facts about this database (manifest cursor, device identity).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Monotonic counters. `event_seq` gives each committed event its gap-free
-- per-device sequence number; it lives here rather than in MAX(seq) so that
-- purging delivered events can never make a number come round again.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('event_seq', 0);

-- The manifest: returns the platform has authorised (or cancelled) for this
-- station (SPEC §4, §6.2).
CREATE TABLE returns (
    return_no       TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    order_no        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('authorized', 'cancelled')),
    expires_at      INTEGER,
    phone_last4     TEXT,
    items           TEXT NOT NULL DEFAULT '[]',
    progress_status TEXT,
    progress_at     TEXT,
    updated_at      TEXT NOT NULL
) STRICT;
CREATE INDEX returns_order_no ON returns (order_no);
CREATE INDEX returns_phone_last4 ON returns (phone_last4);

-- One row per physical parcel (SPEC §3).
CREATE TABLE parcels (
    id            TEXT PRIMARY KEY,
    return_no     TEXT NOT NULL,
    merchant_id   TEXT,
    order_no      TEXT,
    state         TEXT NOT NULL CHECK (state IN ('draft', 'dropped', 'accepted', 'rejected',
                                                 'handed_over', 'held', 'returned_to_customer')),
    channel       TEXT NOT NULL CHECK (channel IN ('self', 'clerk')),
    provisional   INTEGER NOT NULL DEFAULT 0,
    source        TEXT NOT NULL CHECK (source IN ('manifest', 'token', 'unverified')),
    waybill_no    TEXT,
    carrier       TEXT,
    weight_g      INTEGER,
    condition     TEXT CHECK (condition IN ('intact', 'damaged')),
    note          TEXT,
    items         TEXT,
    clerk_id      TEXT,
    reject_reason TEXT,
    hold_reason   TEXT,
    receipt_id    TEXT,
    receipt_at    TEXT,
    custody_at    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
-- The offline duplicate guard lives in the schema: at most one live parcel
-- per return number and per waybill number, whatever the code above does.
CREATE UNIQUE INDEX parcels_one_per_return ON parcels (return_no)
    WHERE state IN ('dropped', 'accepted', 'handed_over', 'held');
CREATE UNIQUE INDEX parcels_one_per_waybill ON parcels (waybill_no)
    WHERE state IN ('accepted', 'handed_over', 'held');
CREATE INDEX parcels_state ON parcels (state, created_at);

-- Stored photos, content-addressed by the SHA-256 of the stored JPEG. The
-- file is durable before its row commits (SPEC §9).
CREATE TABLE photos (
    sha256      TEXT PRIMARY KEY,
    bytes       INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    uploaded_at TEXT,
    purged_at   TEXT
) STRICT;

CREATE TABLE parcel_photos (
    parcel_id TEXT NOT NULL REFERENCES parcels (id) ON DELETE CASCADE,
    sha256    TEXT NOT NULL REFERENCES photos (sha256),
    kind      TEXT NOT NULL CHECK (kind IN ('label', 'parcel', 'damage')),
    added_at  TEXT NOT NULL,
    PRIMARY KEY (parcel_id, sha256, kind)
) STRICT;
CREATE INDEX parcel_photos_sha256 ON parcel_photos (sha256);

-- The outbox (SPEC §5): one row per committed transition, written in the
-- same transaction as the state change.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    parcel_id    TEXT,
    occurred_at  TEXT NOT NULL,
    body         TEXT NOT NULL,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    dead_at      TEXT,
    dead_reason  TEXT
) STRICT;
CREATE INDEX events_pending ON events (seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
