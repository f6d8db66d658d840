-- 0006: receipts and slips waiting for the printer (SPEC §10). Never edit
-- once landed.
--
-- A job is written in the same transaction as the check-in or handover
-- that causes it, and printed in `id` order by the printer task. It names
-- what to print; the bytes are rendered from committed rows when it
-- prints. `printed_at` is set only once the bytes were written and the
-- printer answered after them; `failed_at` marks a job that can never
-- print (what it names is gone), so the queue moves on.
CREATE TABLE print_jobs (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('receipt', 'handover', 'label')),
    ref_id     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    printed_at TEXT,
    failed_at  TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
) STRICT;

CREATE INDEX print_jobs_queue ON print_jobs (id)
    WHERE printed_at IS NULL AND failed_at IS NULL;
