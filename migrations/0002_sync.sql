-- 0002: delivery to the platform (SPEC §5, §6). Never edit once landed.

-- Event bodies move to their own table: marking an event delivered then
-- rewrites a page of small rows instead of a page of whole envelopes (the
-- drain of a long backlog writes ~6x fewer pages to the WAL).
CREATE TABLE event_bodies (
    seq  INTEGER PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    body TEXT NOT NULL
) STRICT;
INSERT INTO event_bodies (seq, body) SELECT seq, body FROM events;
ALTER TABLE events DROP COLUMN body;

-- Photo upload queue state: photos upload on their own queue, retried like
-- events; a photo the platform refuses for good waits for an operator.
ALTER TABLE photos ADD COLUMN upload_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE photos ADD COLUMN upload_error TEXT;
ALTER TABLE photos ADD COLUMN upload_dead_at TEXT;
CREATE INDEX photos_upload_pending ON photos (created_at)
    WHERE uploaded_at IS NULL AND upload_dead_at IS NULL;

-- Platform commands already applied, so a command delivered twice is
-- applied once (SPEC §6.1: idempotent by command_id).
CREATE TABLE commands (
    command_id  TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL
) STRICT;

-- What the platform last said about a return's progress (SPEC §6.4), for
-- the customer's "check my return" page; independent of the manifest.
CREATE TABLE return_progress (
    return_no  TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    at         TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
