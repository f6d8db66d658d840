-- 0007: what an anonymous customer may touch (issue 24). Never edit once
-- landed.
--
-- A self-service draft gets a secret key, handed only to the screen whose
-- scan opened it. Without a clerk session, adding a photo, dropping the
-- parcel off and fetching its receipt need that key (or, for the receipt,
-- the receipt token itself): a parcel id seen somewhere is not enough.
ALTER TABLE parcels ADD COLUMN access_key TEXT;

-- Rescanning a return at the kiosk reuses its open self-service draft, and
-- the open ones are counted against a cap: both look drafts up this way.
CREATE INDEX parcels_open_self_drafts ON parcels (return_no)
    WHERE state = 'draft' AND channel = 'self';

-- What the merchant asks of the station for a return, beyond its items, as
-- the manifest sends it (SPEC §2.5): for now whether the customer may see
-- the item names at the kiosk (`customer_sees_items`). JSON, so that later
-- rules need no migration of their own.
ALTER TABLE returns ADD COLUMN rules TEXT NOT NULL DEFAULT '{}';
