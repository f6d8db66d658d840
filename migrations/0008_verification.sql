-- 0008: what the clerk found against the merchant's rules (SPEC §2.5,
-- issue 21). Never edit once landed.
--
-- The `verification` block of `parcel.accepted` (JSON: type, items found,
-- checklist answers, freight, weight, flags), kept with the parcel so that
-- its receipt can sign its digest and the clerk screen can show it again.
-- NULL for a parcel whose return asked for no checks.
ALTER TABLE parcels ADD COLUMN verification TEXT;
