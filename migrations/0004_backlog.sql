-- 0004: cheap outbox counts. Never edit once landed.
--
-- Outbox counts that stay cheap with a large outbox. `yizhan status`,
-- `/metrics`, `GET /api/v1/sync` and every open kiosk screen read them;
-- before this migration two of them scanned the whole events table
-- (~40 ms with 100 000 events on a desktop CPU, several times that on a
-- kiosk's ARM core).

-- Dead letters are rare: a partial index makes counting them free.
CREATE INDEX events_dead ON events (seq) WHERE dead_at IS NOT NULL;

-- The time of the last confirmed delivery, kept as deliveries are
-- recorded instead of found with MAX(delivered_at) over every event.
INSERT INTO meta (key, value)
SELECT 'last_delivered_at', MAX(delivered_at) FROM events
HAVING MAX(delivered_at) IS NOT NULL;
