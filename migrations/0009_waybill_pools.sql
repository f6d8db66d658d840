-- 0009: e-waybill number pools (电子面单号段, SPEC §2.5, issue 21). Never
-- edit once landed.
--
-- Blocks of a carrier's e-waybill numbers the platform hands the station
-- (the `waybill.pool` command, `waybill_pools` in a manifest page). A parcel
-- without a courier label takes the next unused number of its carrier in
-- its acceptance's own transaction: `parcel_id` is set in the same commit
-- as the parcel's `accepted`, so a power cut leaves the number either used
-- by a committed parcel or still free, and a number once known is never
-- added again (the primary key): never the same number twice.
CREATE TABLE waybill_pool (
    waybill_no TEXT PRIMARY KEY,
    carrier    TEXT NOT NULL,
    block_id   TEXT,
    added_at   TEXT NOT NULL,
    parcel_id  TEXT,
    used_at    TEXT
);
CREATE INDEX waybill_pool_free ON waybill_pool (carrier, added_at, waybill_no)
    WHERE parcel_id IS NULL;

-- Where a parcel's waybill came from: NULL (the courier's own label,
-- scanned) or 'pool' (taken from a pool at accept).
ALTER TABLE parcels ADD COLUMN waybill_source TEXT;
