-- Sync for 003, on green after each replay batch. Replay has already made main.content_v1 and
-- main.downloads_v1 equal to blue for the changed keys in temp.bluegreen_changes; this script
-- re-derives the v2 rows of exactly those keys through the same migrate_v1_* views 003 loaded
-- with: delete the derived rows, insert them again from the current v1 rows. Running it twice on
-- the same batch gives the same result (idempotent). Reads main only (the
-- `source` schema is not needed: main's v1 tables are already current). It runs with triggers
-- off (bluegreen's connections), so the audit triggers do not fire: updated_at stays created_at.
--
-- Contract it relies on (DESIGN.md, "Sync and rollback scripts"):
--   * changed-keys: temp.bluegreen_changes names content_v1 / downloads_v1 rows by rowid (= id);
--     other table names are ignored.
--   * replay-first: main.content_v1 / main.downloads_v1 already hold the current rows.
--   * one-to-one ids: content.id = content_v1.id, downloads.id = downloads_v1.id, and the
--     content_metadata / download_errors rows of a key are found by their parent's id, so
--     re-deriving a key touches only its rows.
--   * pre-cutover: until cutover only this script writes the v2 tables.

-- Keys to re-derive (CAST: a rowid key may arrive as an integer or as its quote()d digits). A
-- changed content row also re-derives the downloads that point at it, including orphans: a
-- content row that appears (or disappears) turns its downloads from orphan to linked (or back)
-- without those download rows changing in v1.
DROP TABLE IF EXISTS temp.bg003_content_keys;
DROP TABLE IF EXISTS temp.bg003_download_keys;
CREATE TEMP TABLE bg003_content_keys (id INTEGER PRIMARY KEY);
CREATE TEMP TABLE bg003_download_keys (id INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO temp.bg003_content_keys (id)
SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content_v1';
INSERT OR IGNORE INTO temp.bg003_download_keys (id)
SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads_v1'
UNION ALL
SELECT d.id FROM downloads d WHERE d.content_id IN (SELECT id FROM temp.bg003_content_keys)
UNION ALL
SELECT d.id FROM downloads d WHERE d.orphan_content_id IN (SELECT id FROM temp.bg003_content_keys);

-- migration_status, part 1: take out what the old rows of these keys counted. content and
-- content_v1 (downloads and downloads_v1) were one-to-one before this batch, so the old v1 count
-- of the keys is their old v2 count.
UPDATE migration_status
SET records_processed = records_processed - CASE migration_id
      WHEN '2.0.0:content' THEN (SELECT count(*) FROM content WHERE id IN (SELECT id FROM temp.bg003_content_keys))
      WHEN '2.0.0:content_metadata' THEN
        (SELECT count(*) FROM content_metadata WHERE content_id IN (SELECT id FROM temp.bg003_content_keys))
      WHEN '2.0.0:downloads' THEN
        (SELECT count(*) FROM downloads WHERE id IN (SELECT id FROM temp.bg003_download_keys))
      WHEN '2.0.0:download_errors' THEN
        (SELECT count(*) FROM download_errors WHERE download_id IN (SELECT id FROM temp.bg003_download_keys))
      ELSE 0 END,
    total_records = total_records - CASE
      WHEN migration_id IN ('2.0.0:downloads', '2.0.0:download_errors')
        THEN (SELECT count(*) FROM downloads WHERE id IN (SELECT id FROM temp.bg003_download_keys))
      WHEN migration_id = '2.0.0:platforms' THEN 0
      ELSE (SELECT count(*) FROM content WHERE id IN (SELECT id FROM temp.bg003_content_keys)) END
WHERE migration_id LIKE '2.0.0:%';

-- Children first, so this also works on a connection with foreign_keys on.
DELETE FROM download_errors WHERE download_id IN (SELECT id FROM temp.bg003_download_keys);
DELETE FROM downloads WHERE id IN (SELECT id FROM temp.bg003_download_keys);
DELETE FROM content_metadata WHERE content_id IN (SELECT id FROM temp.bg003_content_keys);
DELETE FROM content WHERE id IN (SELECT id FROM temp.bg003_content_keys);

-- A platform name seen for the first time gets its row (same rule as 003).
INSERT INTO platforms (name, display_name)
SELECT DISTINCT platform_name, upper(substr(platform_name, 1, 1)) || substr(platform_name, 2)
FROM v1_content_platform
WHERE id IN (SELECT id FROM temp.bg003_content_keys) AND platform_name NOT IN (SELECT name FROM platforms)
ORDER BY 1;

INSERT INTO content (id, platform_id, original_url, title, description, content_type, status, author_name, author_id,
                     duration_seconds, file_size_bytes, view_count, like_count, comment_count, published_at,
                     local_file_path, thumbnail_path, created_at, updated_at, v1_platform)
SELECT id, platform_id, original_url, title, description, content_type, status, author_name, author_id,
       duration_seconds, file_size_bytes, view_count, like_count, comment_count, published_at,
       local_file_path, thumbnail_path, created_at, updated_at, v1_platform
FROM migrate_v1_content WHERE id IN (SELECT id FROM temp.bg003_content_keys);

INSERT INTO content_metadata (content_id, metadata_type, metadata_key, metadata_value, data_type, created_at)
SELECT content_id, metadata_type, metadata_key, metadata_value, data_type, created_at
FROM migrate_v1_content_metadata WHERE content_id IN (SELECT id FROM temp.bg003_content_keys)
ORDER BY content_id, metadata_type, metadata_key;

INSERT INTO downloads (id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at,
                       v1_status)
SELECT id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at, v1_status
FROM migrate_v1_downloads WHERE id IN (SELECT id FROM temp.bg003_download_keys);

INSERT INTO download_errors (id, download_id, error_type, error_message, occurred_at)
SELECT id, download_id, error_type, error_message, occurred_at
FROM migrate_v1_download_errors WHERE id IN (SELECT id FROM temp.bg003_download_keys);

-- migration_status, part 2: add what the new rows count.
UPDATE migration_status
SET records_processed = CASE migration_id
      WHEN '2.0.0:platforms' THEN (SELECT count(*) FROM platforms)
      ELSE records_processed + CASE migration_id
        WHEN '2.0.0:content' THEN (SELECT count(*) FROM content WHERE id IN (SELECT id FROM temp.bg003_content_keys))
        WHEN '2.0.0:content_metadata' THEN
          (SELECT count(*) FROM content_metadata WHERE content_id IN (SELECT id FROM temp.bg003_content_keys))
        WHEN '2.0.0:downloads' THEN
          (SELECT count(*) FROM downloads WHERE id IN (SELECT id FROM temp.bg003_download_keys))
        WHEN '2.0.0:download_errors' THEN
          (SELECT count(*) FROM download_errors WHERE download_id IN (SELECT id FROM temp.bg003_download_keys))
        ELSE 0 END END,
    total_records = CASE
      WHEN migration_id = '2.0.0:platforms' THEN (SELECT count(*) FROM platforms)
      WHEN migration_id IN ('2.0.0:downloads', '2.0.0:download_errors')
        THEN total_records + (SELECT count(*) FROM downloads_v1 WHERE id IN (SELECT id FROM temp.bg003_download_keys))
      ELSE total_records + (SELECT count(*) FROM content_v1 WHERE id IN (SELECT id FROM temp.bg003_content_keys)) END
WHERE migration_id LIKE '2.0.0:%';

DROP TABLE temp.bg003_content_keys;
DROP TABLE temp.bg003_download_keys;
