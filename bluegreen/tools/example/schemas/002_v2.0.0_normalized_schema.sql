-- 002: the Social Download Manager v2.0 schema in the shape of the SDM migration plan: content_v1's
-- JSON blobs become the plan's typed `content` columns and its key-value `content_metadata`.
-- This file only creates tables and seed rows; 003 moves the data and builds the indexes that are
-- cheaper to build after a bulk load. schema_migrations is bluegreen's own history table (it has
-- the plan's migration_file, rollback_file, executed_at and rollback_notes columns) and
-- migration_performance_tests is the performance gate's: neither is created here.
--
-- Conventions that make the migration lossless and revertible (003 relies on them):
--   * ids are kept: content.id = content_v1.id, downloads.id = downloads_v1.id; a v1 error
--     message (held inline) arrives as the download_errors row with its download's id.
--   * every key of a v1 metadata / download_info object has exactly one home: a typed content
--     column (only when the JSON value already had the column's type and passes its CHECK) or a
--     content_metadata row under a name that maps back to the v1 key; text that was not a JSON
--     object is a 'raw' row, verbatim. Nothing is ever lost and a revert rebuilds the v1 JSON.
--   * v1_* columns keep the verbatim v1 value next to its normalized form ('YouTube', ' tiktok ').
--   * CHECK constraints hold for every migrated row: values that would break them are not put in
--     the typed column (they become content_metadata rows), rather than failing the migration.

-- Platforms: the three v1 knew, plus 'unknown' for a missing or unusable platform value. 003 adds
-- one row per other distinct lower-cased, trimmed value it finds ('vimeo', 'twitter'), so v2 can
-- filter by every platform the data names.
CREATE TABLE platforms (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE CHECK (name <> '' AND name = lower(trim(name))),
  display_name TEXT NOT NULL,
  base_url TEXT,
  is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO platforms (id, name, display_name, base_url) VALUES
  (1, 'youtube', 'YouTube', 'https://www.youtube.com'),
  (2, 'tiktok', 'TikTok', 'https://www.tiktok.com'),
  (3, 'instagram', 'Instagram', 'https://www.instagram.com'),
  (4, 'unknown', 'Unknown', NULL);

-- One row per downloadable item: the plan's content (003's column list). Each v1 metadata /
-- download_info key the plan gives a column lands here when its JSON value has exactly the
-- column's type (and passes its CHECK); every other key is a content_metadata row. Column types of
-- verbatim v1 values match v1's, so SQLite's type affinity stores exactly what v1 stored.
CREATE TABLE content (
  id INTEGER PRIMARY KEY,                                  -- = content_v1.id
  platform_id INTEGER NOT NULL REFERENCES platforms(id),
  original_url TEXT NOT NULL,                              -- content_v1.url
  title TEXT,
  description TEXT,                                        -- metadata.description
  content_type TEXT,                                       -- metadata.content_type: 'video', 'short', 'reel', ...
  status TEXT,                                             -- download_info.status: 'completed', 'failed', ...
  author_name TEXT,                                        -- content_v1.author
  author_id TEXT,                                          -- metadata.uploader_id (when text)
  duration_seconds NUMERIC CHECK (duration_seconds >= 0),  -- metadata.duration: integer, or real with a fraction
  file_size_bytes INTEGER CHECK (file_size_bytes >= 0),    -- download_info.file_size
  view_count INTEGER CHECK (view_count >= 0),
  like_count INTEGER CHECK (like_count >= 0),
  comment_count INTEGER CHECK (comment_count >= 0),
  published_at TEXT CHECK (published_at IS NULL OR date(published_at) IS NOT NULL),
                                                           -- metadata.upload_date YYYYMMDD as 'YYYY-MM-DD'
  local_file_path TEXT,                                    -- download_info.file_path
  thumbnail_path TEXT,                                     -- download_info.thumbnail_path
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,          -- kept current by content_touch_updated_at (003)
  v1_platform TEXT                -- content_v1.platform verbatim (NULL, 'YouTube', ' tiktok ', ...)
);

-- The plan's flexible metadata: one row per key. metadata_type says where the key came from:
--   platform_specific  the platform's own id under the plan's name (youtube_video_id = YouTube's
--                      'id', tiktok_video_id = TikTok's 'aweme_id', instagram_media_id = 'pk')
--   video_specs        resolution_width, resolution_height, fps, video_codec, audio_codec
--                      (v1's width, height, fps, vcodec, acodec)
--   extra              every other metadata key, under its v1 name (also a key the plan gives a
--                      content column when its value did not fit it: duration '3:45')
--   download_info      every download_info key with no content column, under its v1 name
--   raw                metadata_key 'metadata' / 'download_info': the v1 text verbatim when it
--                      was not a JSON object with keys ('N/A', '', '[..]', a blob, '{}')
-- data_type: integer, float, string (the plan's), boolean, null, json (an array or object, or a
-- number whose JSON text SQLite would not give back as written: 1.50, 1e5, 2^80), blob.
-- metadata_value has no declared type, so each value keeps its SQLite type (29.97 stays a real,
-- '1920' stays text) and comparisons are numeric where the value is a number. A key appears once
-- per content: (content_id, metadata_type, metadata_key) is the primary key (WITHOUT ROWID: no
-- surrogate id and no second index over the same columns, a third smaller than with one; a row's
-- captured key names its content, so a revert finds the v1 row of a deleted key).
CREATE TABLE content_metadata (
  content_id INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  metadata_type TEXT NOT NULL
    CHECK (metadata_type IN ('platform_specific', 'video_specs', 'extra', 'download_info', 'raw')),
  metadata_key TEXT NOT NULL,
  metadata_value,
  data_type TEXT NOT NULL CHECK (data_type IN ('integer', 'float', 'string', 'boolean', 'null', 'json', 'blob')),
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CHECK (data_type <> 'json' OR json_valid(metadata_value)),
  PRIMARY KEY (content_id, metadata_type, metadata_key)
) WITHOUT ROWID;

-- Formats a content is available in: new in v2 (v1's one format arrives as video_specs rows in
-- content_metadata), empty after the migration.
CREATE TABLE quality_options (
  id INTEGER PRIMARY KEY,
  content_id INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  quality_label TEXT,             -- '1080p'
  width INTEGER CHECK (width > 0),
  height INTEGER CHECK (height > 0),
  fps NUMERIC CHECK (fps > 0),
  vcodec TEXT,
  acodec TEXT,
  is_selected INTEGER NOT NULL DEFAULT 0 CHECK (is_selected IN (0, 1))
);
CREATE UNIQUE INDEX quality_options_one_selected ON quality_options (content_id) WHERE is_selected = 1;
CREATE INDEX quality_options_content ON quality_options (content_id);

-- One download job. Orphans (a v1 content_id with no content_v1 row) keep their row: content_id
-- is NULL and orphan_content_id holds the dangling v1 value, so foreign_key_check stays clean and
-- a revert can write the v1 value back.
CREATE TABLE downloads (
  id INTEGER PRIMARY KEY,                                  -- = downloads_v1.id
  content_id INTEGER REFERENCES content(id) ON DELETE SET NULL,
  orphan_content_id INTEGER,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'downloading', 'paused', 'completed', 'failed', 'cancelled', 'unknown')),
  progress REAL,                  -- verbatim from v1: no range CHECK, so odd legacy values still arrive
  file_path TEXT,
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  v1_status TEXT,                 -- downloads_v1.status verbatim ('Completed', 'error', NULL, ...)
  CHECK (content_id IS NULL OR orphan_content_id IS NULL)
);

-- One row per download run of a content: new in v2 (v1's inline download_info arrives in content's
-- status / file_size_bytes / local_file_path / thumbnail_path and download_info rows), empty
-- after the migration.
CREATE TABLE download_sessions (
  id INTEGER PRIMARY KEY,
  content_id INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  download_id INTEGER REFERENCES downloads(id) ON DELETE SET NULL,  -- unknown for v1 rows
  status TEXT,
  file_path TEXT,
  file_size INTEGER CHECK (file_size >= 0),
  thumbnail_path TEXT,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- Error history of a download (v1 kept the last message inline: it arrives with id = download id).
CREATE TABLE download_errors (
  id INTEGER PRIMARY KEY,
  download_id INTEGER NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
  error_type TEXT NOT NULL DEFAULT 'other'
    CHECK (error_type IN ('http', 'network', 'extraction', 'unavailable', 'other')),
  error_message TEXT NOT NULL,
  occurred_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- Tags are new in v2 (v1 had none): empty after the migration.
CREATE TABLE tags (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (trim(name) <> ''),
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE content_tags (
  content_id INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (content_id, tag_id)
);
CREATE INDEX content_tags_tag ON content_tags (tag_id);

-- The plan's application_settings (008's columns: setting_key, setting_value, description), plus
-- the type of each value and when it last changed.
CREATE TABLE application_settings (
  setting_key TEXT PRIMARY KEY,
  setting_value TEXT,
  description TEXT,
  value_type TEXT NOT NULL DEFAULT 'string'
    CHECK (value_type IN ('string', 'integer', 'boolean', 'path', 'json', 'date')),
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO application_settings (setting_key, setting_value, value_type, description) VALUES
  ('download_directory', '~/Downloads/SocialDownloadManager', 'path', 'where finished files go'),
  ('max_concurrent_downloads', '3', 'integer', 'downloads running at once'),
  ('default_quality', 'best', 'string', 'format picked when the user does not choose'),
  ('auto_retry_failed', '1', 'boolean', 'retry a failed download once'),
  ('max_retries', '3', 'integer', 'retries before a download is marked failed'),
  ('theme', 'system', 'string', 'light, dark or system'),
  ('language', 'en', 'string', 'UI language'),
  ('data_version', '2.0.0', 'string', 'the application data format of this file'),
  ('old_schema_cleanup_date', NULL, 'date',
   'content_v1_backup and downloads_v1_backup may be dropped from this day on (set by release 2.0.1)');

-- The plan's migration_status (Phase 1.1), one row per step of the data migration (003 fills
-- them in). migration_id is '<version>:<step>'. records_processed counts rows written to the
-- step's table, total_records rows in its v1 source table; the sync script keeps both current
-- while green catches up.
CREATE TABLE migration_status (
  migration_id TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  started_at TIMESTAMP,
  completed_at TIMESTAMP,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
  error_message TEXT,
  records_processed INTEGER NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
  total_records INTEGER CHECK (total_records >= 0)
);
INSERT INTO migration_status (migration_id, description) VALUES
  ('2.0.0:platforms', 'platform rows: the seeded ones and every other platform the v1 rows name'),
  ('2.0.0:content', 'one content row per content_v1 row, id kept'),
  ('2.0.0:content_metadata', 'one row per v1 metadata / download_info key without a content column'),
  ('2.0.0:downloads', 'one downloads row per downloads_v1 row, id kept'),
  ('2.0.0:download_errors', 'one download_errors row per downloads_v1 error_message');

-- The audit trail ("audit trails and versioning throughout"): one row per change an application
-- makes to content after cutover, written by 003's triggers (what changed: the old and new values
-- of the columns that changed, as JSON objects; when). bluegreen's own connections run with
-- triggers off, so the load, the sync script and replay never write here: history starts at the
-- cutover, and a revert does not carry it back (v1 has no history; the rollback script declares
-- it and leaves it). The plan's data_integrity_monitor view is created by 003 (it reads 003's tables).
CREATE TABLE content_history (
  id INTEGER PRIMARY KEY,
  content_id INTEGER NOT NULL,                -- no foreign key: the history of a deleted row stays
  operation TEXT NOT NULL CHECK (operation IN ('insert', 'update', 'delete')),
  changed_columns TEXT,                       -- JSON array of column names
  old_values TEXT,                            -- JSON object, NULL for an insert
  new_values TEXT,                            -- JSON object, NULL for a delete
  changed_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX content_history_content ON content_history (content_id, id);
