-- 0003: the counter (SPEC §2.3, §2.4, §7): clerks, consolidation bags and
-- courier handovers. Never edit once landed.

-- Clerks who may log in at the kiosk. The PIN is kept only as an Argon2id
-- hash (PHC string); a disabled clerk can no longer log in.
CREATE TABLE clerks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    pin_hash    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    disabled_at TEXT
) STRICT;

-- One courier pickup: who took what.
CREATE TABLE handovers (
    id         TEXT PRIMARY KEY,
    courier    TEXT NOT NULL,
    carrier    TEXT NOT NULL,
    clerk_id   TEXT,
    created_at TEXT NOT NULL
) STRICT;

-- A parcel leaves once: the primary key refuses a second handover whatever
-- the code above does.
CREATE TABLE handover_parcels (
    parcel_id   TEXT PRIMARY KEY REFERENCES parcels (id),
    handover_id TEXT NOT NULL REFERENCES handovers (id),
    bag_id      TEXT
) STRICT;
CREATE INDEX handover_parcels_handover ON handover_parcels (handover_id);

-- Bags and totes for consolidation, each with its own barcode. A code is
-- unique among open bags (totes are reused after pickup).
CREATE TABLE bags (
    id          TEXT PRIMARY KEY,
    code        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('open', 'handed_over')),
    clerk_id    TEXT,
    created_at  TEXT NOT NULL,
    handover_id TEXT REFERENCES handovers (id)
) STRICT;
CREATE UNIQUE INDEX bags_open_code ON bags (code) WHERE state = 'open';

-- A parcel is in at most one bag.
CREATE TABLE bag_parcels (
    parcel_id TEXT PRIMARY KEY REFERENCES parcels (id),
    bag_id    TEXT NOT NULL REFERENCES bags (id),
    added_at  TEXT NOT NULL
) STRICT;
CREATE INDEX bag_parcels_bag ON bag_parcels (bag_id);
