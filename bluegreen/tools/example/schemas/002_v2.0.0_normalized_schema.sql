-- 002: the Social Download Manager v2.0 schema: content_v1's JSON blobs become typed, normalized
-- tables. This file only creates tables and seed rows; 003 moves the data and builds the indexes
-- that are cheaper to build after a bulk load. schema_migrations is bluegreen's own table (the
-- 11th core table) and is not created here.
--
-- Conventions that make the migration lossless and revertible (003 relies on them):
--   * ids are kept: content.id = content_v1.id, downloads.id = downloads_v1.id; a child row that
--     v1 held inline (metadata, quality, download_info, error_message) gets its parent's id.
--   * typed columns hold a value only when the v1 JSON value already had that type; anything
--     else stays verbatim in extra_json (valid JSON objects) or raw_* (text that was not a JSON
--     object), so nothing is ever lost and a revert can rebuild the v1 JSON.
--   * v1_* columns keep the verbatim v1 value next to its normalized form ('YouTube', ' tiktok ').
--   * CHECK constraints hold for every migrated row: values that would break them are not put in
--     the typed column (they stay in extra_json), rather than failing the migration.

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

-- One row per downloadable item. Column types of verbatim v1 values match v1's, so SQLite's type
-- affinity stores exactly what v1 stored.
CREATE TABLE content (
  id INTEGER PRIMARY KEY,                                  -- = content_v1.id
  platform_id INTEGER NOT NULL REFERENCES platforms(id),
  platform_content_id TEXT,       -- YouTube id, TikTok aweme_id, Instagram pk (as text)
  original_url TEXT NOT NULL,
  title TEXT,
  author TEXT,
  uploader_id TEXT,
  content_type TEXT,              -- 'video', 'short', 'reel', 'image', 'carousel', ...
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  v1_platform TEXT                -- content_v1.platform verbatim (NULL, 'YouTube', ' tiktok ', ...)
);

-- Exactly one row per content (v1 had one metadata blob per row, possibly NULL).
CREATE TABLE content_metadata (
  content_id INTEGER PRIMARY KEY REFERENCES content(id) ON DELETE CASCADE,
  description TEXT,
  duration_seconds NUMERIC CHECK (duration_seconds >= 0),  -- integer, or real with a fraction
  view_count INTEGER CHECK (view_count >= 0),
  like_count INTEGER CHECK (like_count >= 0),
  comment_count INTEGER CHECK (comment_count >= 0),
  upload_date TEXT CHECK (upload_date IS NULL OR date(upload_date) = upload_date),  -- YYYY-MM-DD
  extra_json TEXT CHECK (extra_json IS NULL OR (json_valid(extra_json) AND json_type(extra_json) = 'object')),
                                  -- the v1 object minus the keys moved into typed columns
  raw_metadata TEXT,              -- v1 metadata verbatim when it was not a JSON object
  CHECK (extra_json IS NULL OR raw_metadata IS NULL)
);

-- Formats a content is available in. v1 recorded one (width/height/fps/codecs in metadata): it
-- arrives as the selected option, id = content id.
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

-- What the UI shows for a content's download run: status, file, size, thumbnail. v1 kept the
-- latest one inline (content_v1.download_info); it arrives with id = content id. v2 adds one row
-- per run; the newest (highest id) is the current one.
CREATE TABLE download_sessions (
  id INTEGER PRIMARY KEY,
  content_id INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
  download_id INTEGER REFERENCES downloads(id) ON DELETE SET NULL,  -- unknown for v1 rows
  status TEXT,
  file_path TEXT,
  file_size INTEGER CHECK (file_size >= 0),
  thumbnail_path TEXT,
  extra_json TEXT CHECK (extra_json IS NULL OR (json_valid(extra_json) AND json_type(extra_json) = 'object')),
  raw_info TEXT,                  -- v1 download_info verbatim when it was not a JSON object
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CHECK (extra_json IS NULL OR raw_info IS NULL)
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

CREATE TABLE application_settings (
  key TEXT PRIMARY KEY,
  value TEXT,
  value_type TEXT NOT NULL DEFAULT 'string' CHECK (value_type IN ('string', 'integer', 'boolean', 'path', 'json')),
  description TEXT,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO application_settings (key, value, value_type, description) VALUES
  ('download_directory', '~/Downloads/SocialDownloadManager', 'path', 'where finished files go'),
  ('max_concurrent_downloads', '3', 'integer', 'downloads running at once'),
  ('default_quality', 'best', 'string', 'format picked when the user does not choose'),
  ('auto_retry_failed', '1', 'boolean', 'retry a failed download once'),
  ('max_retries', '3', 'integer', 'retries before a download is marked failed'),
  ('theme', 'system', 'string', 'light, dark or system'),
  ('language', 'en', 'string', 'UI language'),
  ('data_version', '2.0.0', 'string', 'the application data format of this file');

-- Progress of the data migration, one row per step (003 fills them in). records_processed counts
-- rows written to the step's table, total_records rows in its v1 source table; the sync script
-- keeps both current while green catches up.
CREATE TABLE migration_status (
  id INTEGER PRIMARY KEY,
  migration_version TEXT NOT NULL,
  step TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
  records_processed INTEGER NOT NULL DEFAULT 0 CHECK (records_processed >= 0),
  total_records INTEGER CHECK (total_records >= 0),
  started_at TIMESTAMP,
  completed_at TIMESTAMP,
  error_message TEXT,
  UNIQUE (migration_version, step)
);
INSERT INTO migration_status (migration_version, step) VALUES
  ('2.0.0', 'platforms'), ('2.0.0', 'content'), ('2.0.0', 'content_metadata'), ('2.0.0', 'quality_options'),
  ('2.0.0', 'download_sessions'), ('2.0.0', 'downloads'), ('2.0.0', 'download_errors');
