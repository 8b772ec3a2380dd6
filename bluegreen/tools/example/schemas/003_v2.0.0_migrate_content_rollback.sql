-- bluegreen: carries content, content_metadata, downloads, download_errors, content_history
-- (content_history is the v2 audit trail: v1 has no history, so its rows are knowingly left
-- behind; the content changes it records are carried. platforms is not declared: a platform no
-- content row uses has no v1 home, so a platform change makes revert refuse until the operator
-- accepts the loss; the rows are then exported first. quality_options, download_sessions, tags
-- and content_tags are v2-only and not declared either. Within the declared tables, rows v1
-- cannot hold — see "latest-wins" below — are listed in temp.bluegreen_uncarried at the end of
-- this file, and revert refuses them the same way.)
-- Rollback for 003, on blue (the v1.2.1 file, as main) during a revert, with green (the v2 file)
-- attached read-only as `source` and green's changed keys in temp.bluegreen_changes. It carries
-- post-cutover v2 writes back into content_v1 / downloads_v1: every v1 row that a changed v2 row
-- stands for is rebuilt from green's current v2 rows through the legacy_* views 003 created in
-- green (v2 → v1 shape: metadata and download_info JSON rebuilt from the typed content columns
-- and the content_metadata rows), upserted by id, or deleted when its v2 row is gone. It reads
-- only green's v2 tables, never green's content_v1 / downloads_v1 copies (the app stopped
-- writing those at cutover). Idempotent: it writes the current green state, so running it twice
-- changes nothing.
--
-- Contract it relies on (DESIGN.md, "Sync and rollback scripts"):
--   * changed-keys: temp.bluegreen_changes names green rows by rowid: content, platforms,
--     downloads, download_errors; content_metadata (WITHOUT ROWID) by its quote()d primary key
--     `content_id,'type','key'` (an update that moves a row names the old and the new key);
--     content_history is ignored.
--   * parent-touch: deleting or re-parenting a download_errors row leaves no trace of its old
--     download in its own key, so 003's triggers touch the old download with a no-op UPDATE;
--     green's change capture must record that update (AFTER UPDATE triggers fire for every
--     updated row, changed or not).
--   * latest-wins: v1 holds one error per download: the newest (highest id).
--   * v2-only data is not carried back: content columns v1 has no place for (updated_at),
--     content_history, tags, content_tags, quality_options, download_sessions,
--     application_settings, migration_status, older errors, and a 'raw' row once a key is set
--     (v1 then gets the JSON object of the keys).

DROP TABLE IF EXISTS temp.bg003_rb_content;
DROP TABLE IF EXISTS temp.bg003_rb_downloads;
CREATE TEMP TABLE bg003_rb_content (id INTEGER PRIMARY KEY);
CREATE TEMP TABLE bg003_rb_downloads (id INTEGER PRIMARY KEY);

-- content_v1 rows to rebuild (CAST: a rowid key may arrive as an integer or as its quote()d digits)
INSERT OR IGNORE INTO temp.bg003_rb_content (id)
SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content'
UNION ALL
-- a content_metadata key (WITHOUT ROWID) is its quote()d primary key: content_id first
SELECT CAST(substr(row_key, 1, instr(row_key, ',') - 1) AS INTEGER) FROM temp.bluegreen_changes
WHERE table_name = 'content_metadata'
UNION ALL
-- a renamed platform changes content_v1.platform of all its rows
SELECT c.id FROM source.content c
WHERE c.platform_id IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'platforms');

-- downloads_v1 rows to rebuild
INSERT OR IGNORE INTO temp.bg003_rb_downloads (id)
SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads'
UNION ALL
SELECT e.download_id FROM source.download_errors e
WHERE e.id IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'download_errors');

-- Order keeps v1's content_id references valid on a connection with foreign_keys on: drop gone
-- downloads, upsert content, upsert downloads, then drop gone content.
DELETE FROM main.downloads_v1
WHERE id IN (SELECT id FROM temp.bg003_rb_downloads)
  AND NOT EXISTS (SELECT 1 FROM source.downloads d WHERE d.id = downloads_v1.id);

INSERT INTO main.content_v1 (id, url, title, author, platform, metadata, download_info, created_at)
SELECT id, url, title, author, platform, metadata, download_info, created_at
FROM source.legacy_content_v1
WHERE id IN (SELECT id FROM temp.bg003_rb_content)
ON CONFLICT (id) DO UPDATE SET
  url = excluded.url, title = excluded.title, author = excluded.author, platform = excluded.platform,
  metadata = excluded.metadata, download_info = excluded.download_info, created_at = excluded.created_at;

INSERT INTO main.downloads_v1 (id, content_id, status, progress, file_path, error_message, started_at, finished_at)
SELECT id, content_id, status, progress, file_path, error_message, started_at, finished_at
FROM source.legacy_downloads_v1
WHERE id IN (SELECT id FROM temp.bg003_rb_downloads)
ON CONFLICT (id) DO UPDATE SET
  content_id = excluded.content_id, status = excluded.status, progress = excluded.progress,
  file_path = excluded.file_path, error_message = excluded.error_message, started_at = excluded.started_at,
  finished_at = excluded.finished_at;

DELETE FROM main.content_v1
WHERE id IN (SELECT id FROM temp.bg003_rb_content)
  AND NOT EXISTS (SELECT 1 FROM source.content c WHERE c.id = content_v1.id);

DROP TABLE temp.bg003_rb_content;
DROP TABLE temp.bg003_rb_downloads;

-- Changed rows v1 has no place for (latest-wins): an error that is not its download's newest.
-- The controller refuses the revert (nothing changed) unless the operator accepts the loss.
CREATE TEMP TABLE IF NOT EXISTS bluegreen_uncarried (table_name TEXT, row_key);
INSERT INTO temp.bluegreen_uncarried (table_name, row_key)
SELECT 'download_errors', e.id FROM source.download_errors e
WHERE e.id IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes
               WHERE table_name = 'download_errors' AND present = 1)
  AND e.id < (SELECT max(n.id) FROM source.download_errors n WHERE n.download_id = e.download_id);
