-- 0005: delivery recorded without rewriting event rows. Never edit once
-- landed.
--
-- Until now a PUBACK was recorded by setting `events.delivered_at` (and
-- `attempts`) on the event's row: a batch of 2 500 acks rewrote ~85 pages
-- of `events`, and the next check-in's fsync had to write them out
-- (docs/PERFORMANCE.md: check-ins during a drain lost ~10 points to it).
-- Now what is still to be sent is a narrow queue, and an MQTT delivery
-- deletes from it and adds one row per run of consecutive `seq`.

-- Every event not yet delivered and not a dead letter: one small row,
-- written with the event, deleted when it is delivered or given up on,
-- put back by an operator's retry. No REFERENCES clause: events are never
-- deleted, and a foreign key would add a lookup to every check-in's commit.
CREATE TABLE outbox_pending (
    seq INTEGER PRIMARY KEY
) STRICT;
INSERT INTO outbox_pending (seq)
SELECT seq FROM events WHERE delivered_at IS NULL AND dead_at IS NULL;
DROP INDEX events_pending;

-- When runs of events were confirmed over MQTT. Runs never overlap: a run
-- holds only the `seq`s its batch took out of `outbox_pending`. Deliveries
-- confirmed by event id (HTTPS) still set `events.delivered_at`.
CREATE TABLE delivery_runs (
    first_seq    INTEGER PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    delivered_at TEXT NOT NULL
) STRICT;
