-- 001: the Social Download Manager v1.2.1 schema, as shipped (bluegreen.demo_data.V1_SCHEMA).
-- IF NOT EXISTS: on an existing v1.2.1 database this changes nothing (it records the baseline
-- in schema_migrations); on an empty file it creates v1.2.1.
CREATE TABLE IF NOT EXISTS content_v1 (
  id INTEGER PRIMARY KEY,
  url TEXT NOT NULL,
  title TEXT, author TEXT,
  platform TEXT,              -- 'youtube', 'YouTube', 'tiktok', 'instagram', others, or NULL
  metadata TEXT,              -- JSON object; may be NULL, '{}', or in old rows not valid JSON
  download_info TEXT,         -- JSON object or NULL
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS downloads_v1 (
  id INTEGER PRIMARY KEY,
  content_id INTEGER REFERENCES content_v1(id),
  status TEXT, progress REAL, file_path TEXT, error_message TEXT,
  started_at TIMESTAMP, finished_at TIMESTAMP);
