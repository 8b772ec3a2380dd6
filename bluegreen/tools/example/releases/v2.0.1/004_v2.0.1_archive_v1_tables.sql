-- 004 (release 2.0.1, the plan's 008): the v1 tables become backups and the day they may be
-- dropped is recorded. Deploy it once 2.0.0 is finalized (the v2 application no longer needs a
-- revert to v1.2.1): copy this file into the migrations folder, then `bluegreen deploy`. The
-- release that drops the backups (2.1.0) declares `-- bluegreen: not-before` on
-- old_schema_cleanup_date, so `plan`, `prepare` and `deploy` refuse it before that day.
--
-- Nothing reads the v1 tables once 2.0.0 is finalized (003's sync never runs again), so 003's
-- v1 → v2 mapping views go first; the legacy_* views read v2 only and stay. content_v1 is renamed
-- (every row and rowid kept). downloads_v1 is copied into a backup without its foreign key (v1
-- kept downloads of missing content on purpose, and an archive does not check references), ids
-- kept, then dropped. Catch-up and revert keep the backups and application_settings through this
-- file's _sync.sql and _rollback.sql (nothing writes the v1 tables on 2.0.0, so they normally have
-- nothing to do but the application's settings changes).
DROP VIEW migrate_v1_download_errors;
DROP VIEW migrate_v1_downloads;
DROP VIEW migrate_v1_content_metadata;
DROP VIEW migrate_v1_content;
DROP VIEW v1_content_fields;
DROP VIEW v1_content_parsed;
DROP VIEW v1_content_platform;

ALTER TABLE content_v1 RENAME TO content_v1_backup;
CREATE TABLE downloads_v1_backup (
  id INTEGER PRIMARY KEY,
  content_id INTEGER,         -- content_v1_backup.id (not checked: v1 has downloads of missing content)
  status TEXT, progress REAL, file_path TEXT, error_message TEXT,
  started_at TIMESTAMP, finished_at TIMESTAMP);
INSERT INTO downloads_v1_backup (id, content_id, status, progress, file_path, error_message, started_at, finished_at)
SELECT id, content_id, status, progress, file_path, error_message, started_at, finished_at FROM downloads_v1;
DROP TABLE downloads_v1;

UPDATE application_settings SET setting_value = date('now', '+30 days'), updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'old_schema_cleanup_date';

UPDATE application_settings SET setting_value = '2.0.1', updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'data_version';
