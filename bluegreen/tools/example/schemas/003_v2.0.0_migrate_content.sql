-- 003: move every v1.2.1 row into the v2.0 tables created by 002. Set-based: one INSERT ... SELECT
-- per table, secondary indexes built after the bulk load, no per-row work outside SQLite.
--
-- The v1 → v2 mapping is written once, as views, and used three ways: this file loads everything
-- through the migrate_v1_* views; 003_..._sync.sql re-derives the changed keys through the same
-- views; the legacy_* views (v2 → v1 shape) are what 003_..._rollback.sql copies back into blue.
-- The views stay in the v2 file next to content_v1/downloads_v1 (a later migration that drops the
-- v1 tables drops them too).
--
-- What happens to odd v1 values (nothing is dropped; validate checks it):
--   platform   lower(trim()) names a platform row; 'YouTube' and ' tiktok ' join youtube/tiktok, other
--              usable names ('vimeo', 'twitter') get their own platforms row, NULL/blank/garbage go to
--              'unknown'. content.v1_platform keeps the verbatim value.
--   metadata   a JSON object is split into typed columns + extra_json (the keys not moved); a value
--              whose JSON type does not fit its column ('3:45', "12345", -1, 212.0) is not moved;
--              NULL stays NULL; anything else (malformed, '', '[..]', a blob) is kept verbatim in
--              content_metadata.raw_metadata. Same for download_info → download_sessions.
--   orphans    downloads_v1 rows whose content_id has no content_v1 row keep their row with
--              content_id NULL and orphan_content_id = the v1 value.
--   status     downloads.status is normalized ('Completed' → completed, 'error' → unknown);
--              downloads.v1_status keeps the verbatim value.

-- ---------------------------------------------------------------------------------------------
-- v1 → v2 mapping views
-- ---------------------------------------------------------------------------------------------

-- The platform each v1 row names: lower(trim()) of the value when it looks like a name, else
-- 'unknown' (NULL, blank, URLs and other garbage).
CREATE VIEW v1_content_platform AS
SELECT c.*,
       CASE WHEN lower(trim(c.platform, ' ' || char(9, 10, 13))) GLOB '[a-z0-9]*'
             AND lower(trim(c.platform, ' ' || char(9, 10, 13))) NOT GLOB '*[^a-z0-9._-]*'
             AND length(trim(c.platform, ' ' || char(9, 10, 13))) <= 32
            THEN lower(trim(c.platform, ' ' || char(9, 10, 13))) ELSE 'unknown' END AS platform_name
FROM content_v1 c;

-- content_v1 with its metadata checked once: m is the text only when it is a JSON object
-- (json_type() raises an error on malformed text, hence the CASE after json_valid()).
-- DISTINCT is redundant (id is unique, so SQLite skips it) but stops SQLite from flattening this
-- view into the views that use it: m is computed once per row instead of at every use
-- (json_valid() is not cached: the load ran over 2x slower without it), while WHERE id IN (...) from the
-- sync script is still pushed down into it as a primary-key search.
CREATE VIEW v1_content_parsed AS
SELECT DISTINCT id, url, title, author, platform, metadata, created_at, platform_name,
       CASE WHEN typeof(metadata) = 'text' AND json_valid(metadata)
            THEN CASE WHEN json_type(metadata) = 'object' THEN metadata END END AS m
FROM v1_content_platform;

-- The same for download_info (a separate view so each load statement parses only what it uses).
CREATE VIEW v1_download_info_parsed AS
SELECT DISTINCT c.id, c.download_info, c.created_at,
       CASE WHEN typeof(c.download_info) = 'text' AND json_valid(c.download_info)
            THEN CASE WHEN json_type(c.download_info) = 'object' THEN c.download_info END END AS di
FROM content_v1 c;

-- Typed values. ok_<key> says the JSON value has exactly the column's type and passes its CHECK;
-- only then is it moved into the typed column (and removed from extra_json), so a revert can put
-- the same JSON value back. Anything else stays verbatim in extra_json and the column is NULL.
-- The platform id is the one exception: a numeric id (Instagram's pk) is stored as its digits in
-- the text column and also left in extra_json. BETWEEN 0 AND 2^63-1 also rejects integers too big
-- for SQLite (->> returns them as a lossy real).
CREATE VIEW v1_content_fields AS
SELECT *,
       CASE json_type(m, pid_path) WHEN 'text' THEN m ->> pid_path WHEN 'integer' THEN m -> pid_path END
         AS platform_content_id,
       CASE WHEN ok_content_type THEN m ->> '$.content_type' END AS content_type,
       CASE WHEN ok_uploader_id THEN m ->> '$.uploader_id' END AS uploader_id,
       CASE WHEN ok_description THEN m ->> '$.description' END AS description,
       CASE WHEN ok_duration THEN m ->> '$.duration' END AS duration_seconds,
       CASE WHEN ok_view_count THEN m ->> '$.view_count' END AS view_count,
       CASE WHEN ok_like_count THEN m ->> '$.like_count' END AS like_count,
       CASE WHEN ok_comment_count THEN m ->> '$.comment_count' END AS comment_count,
       CASE WHEN ok_upload_date THEN substr(m ->> '$.upload_date', 1, 4) || '-' || substr(m ->> '$.upload_date', 5, 2)
                                     || '-' || substr(m ->> '$.upload_date', 7, 2) END AS upload_date,
       CASE WHEN ok_width THEN m ->> '$.width' END AS width,
       CASE WHEN ok_height THEN m ->> '$.height' END AS height,
       CASE WHEN ok_fps THEN m ->> '$.fps' END AS fps,
       CASE WHEN ok_vcodec THEN m ->> '$.vcodec' END AS vcodec,
       CASE WHEN ok_acodec THEN m ->> '$.acodec' END AS acodec
FROM (SELECT *,
             json_type(m, pid_path) = 'text' AS ok_platform_content_id,
             json_type(m, '$.content_type') = 'text' AS ok_content_type,
             json_type(m, '$.uploader_id') = 'text' AS ok_uploader_id,
             json_type(m, '$.description') = 'text' AS ok_description,
             -- an integer, or a real with a fraction (212.0 would come back as 212)
             CASE json_type(m, '$.duration')
               WHEN 'integer' THEN m ->> '$.duration' BETWEEN 0 AND 9223372036854775807
               WHEN 'real' THEN m ->> '$.duration' >= 0 AND m ->> '$.duration' <> CAST(m ->> '$.duration' AS INTEGER)
             END AS ok_duration,
             json_type(m, '$.view_count') = 'integer' AND m ->> '$.view_count' BETWEEN 0 AND 9223372036854775807
               AS ok_view_count,
             json_type(m, '$.like_count') = 'integer' AND m ->> '$.like_count' BETWEEN 0 AND 9223372036854775807
               AS ok_like_count,
             json_type(m, '$.comment_count') = 'integer'
               AND m ->> '$.comment_count' BETWEEN 0 AND 9223372036854775807 AS ok_comment_count,
             -- 'YYYYMMDD' (as yt-dlp writes it) that is a real date; stored as 'YYYY-MM-DD'
             json_type(m, '$.upload_date') = 'text'
               AND m ->> '$.upload_date' GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'
               AND strftime('%Y%m%d', substr(m ->> '$.upload_date', 1, 4) || '-' || substr(m ->> '$.upload_date', 5, 2)
                                      || '-' || substr(m ->> '$.upload_date', 7, 2)) = m ->> '$.upload_date'
               AS ok_upload_date,
             json_type(m, '$.width') = 'integer' AND m ->> '$.width' BETWEEN 1 AND 9223372036854775807 AS ok_width,
             json_type(m, '$.height') = 'integer' AND m ->> '$.height' BETWEEN 1 AND 9223372036854775807 AS ok_height,
             CASE json_type(m, '$.fps')
               WHEN 'integer' THEN m ->> '$.fps' BETWEEN 1 AND 9223372036854775807
               WHEN 'real' THEN m ->> '$.fps' > 0 AND m ->> '$.fps' <> CAST(m ->> '$.fps' AS INTEGER)
             END AS ok_fps,
             json_type(m, '$.vcodec') = 'text' AS ok_vcodec,
             json_type(m, '$.acodec') = 'text' AS ok_acodec
      FROM (SELECT *,
                   -- where each platform keeps its own id: YouTube 'id', TikTok 'aweme_id', Instagram 'pk'
                   CASE platform_name WHEN 'tiktok' THEN '$.aweme_id' WHEN 'instagram' THEN '$.pk' ELSE '$.id' END
                     AS pid_path
            FROM v1_content_parsed));

CREATE VIEW v1_download_info_fields AS
SELECT *,
       CASE WHEN ok_status THEN di ->> '$.status' END AS status,
       CASE WHEN ok_file_path THEN di ->> '$.file_path' END AS file_path,
       CASE WHEN ok_file_size THEN di ->> '$.file_size' END AS file_size,
       CASE WHEN ok_thumbnail_path THEN di ->> '$.thumbnail_path' END AS thumbnail_path
FROM (SELECT *,
             json_type(di, '$.status') = 'text' AS ok_status,
             json_type(di, '$.file_path') = 'text' AS ok_file_path,
             json_type(di, '$.file_size') = 'integer' AND di ->> '$.file_size' BETWEEN 0 AND 9223372036854775807
               AS ok_file_size,
             json_type(di, '$.thumbnail_path') = 'text' AS ok_thumbnail_path
      FROM v1_download_info_parsed);

-- LEFT JOIN: a missing platform row gives platform_id NULL, which fails loudly (NOT NULL)
-- instead of silently dropping the content row.
CREATE VIEW migrate_v1_content AS
SELECT f.id, pl.id AS platform_id, f.platform_content_id, f.url AS original_url, f.title, f.author,
       f.uploader_id, f.content_type, f.created_at, f.created_at AS updated_at, f.platform AS v1_platform
FROM v1_content_fields f LEFT JOIN platforms pl ON pl.name = f.platform_name;

-- extra_json = the v1 object minus the keys that moved into typed columns. json_remove() has no
-- "skip" for one argument (a NULL path makes the whole result NULL), so a key that stays is
-- given the path '$[0]', which never matches inside an object: a no-op.
CREATE VIEW migrate_v1_content_metadata AS
SELECT id AS content_id, description, duration_seconds, view_count, like_count, comment_count, upload_date,
       CASE WHEN m IS NOT NULL THEN json_remove(m,
         CASE WHEN ok_platform_content_id THEN pid_path ELSE '$[0]' END,
         CASE WHEN ok_content_type THEN '$.content_type' ELSE '$[0]' END,
         CASE WHEN ok_uploader_id THEN '$.uploader_id' ELSE '$[0]' END,
         CASE WHEN ok_description THEN '$.description' ELSE '$[0]' END,
         CASE WHEN ok_duration THEN '$.duration' ELSE '$[0]' END,
         CASE WHEN ok_view_count THEN '$.view_count' ELSE '$[0]' END,
         CASE WHEN ok_like_count THEN '$.like_count' ELSE '$[0]' END,
         CASE WHEN ok_comment_count THEN '$.comment_count' ELSE '$[0]' END,
         CASE WHEN ok_upload_date THEN '$.upload_date' ELSE '$[0]' END,
         CASE WHEN ok_width THEN '$.width' ELSE '$[0]' END,
         CASE WHEN ok_height THEN '$.height' ELSE '$[0]' END,
         CASE WHEN ok_fps THEN '$.fps' ELSE '$[0]' END,
         CASE WHEN ok_vcodec THEN '$.vcodec' ELSE '$[0]' END,
         CASE WHEN ok_acodec THEN '$.acodec' ELSE '$[0]' END) END AS extra_json,
       CASE WHEN m IS NULL THEN metadata END AS raw_metadata      -- NULL stays NULL
FROM v1_content_fields;

CREATE VIEW migrate_v1_quality_options AS
SELECT id, id AS content_id, height || 'p' AS quality_label, width, height, fps, vcodec, acodec, 1 AS is_selected
FROM v1_content_fields
WHERE ok_width OR ok_height OR ok_fps OR ok_vcodec OR ok_acodec;

CREATE VIEW migrate_v1_download_sessions AS
SELECT id, id AS content_id, NULL AS download_id, status, file_path, file_size, thumbnail_path,
       CASE WHEN di IS NOT NULL THEN json_remove(di,
         CASE WHEN ok_status THEN '$.status' ELSE '$[0]' END,
         CASE WHEN ok_file_path THEN '$.file_path' ELSE '$[0]' END,
         CASE WHEN ok_file_size THEN '$.file_size' ELSE '$[0]' END,
         CASE WHEN ok_thumbnail_path THEN '$.thumbnail_path' ELSE '$[0]' END) END AS extra_json,
       CASE WHEN di IS NULL THEN download_info END AS raw_info,
       created_at
FROM v1_download_info_fields
WHERE download_info IS NOT NULL;

-- Reads content (v2), not content_v1: a download links to a content only if that row arrived.
CREATE VIEW migrate_v1_downloads AS
SELECT d.id, c.id AS content_id, CASE WHEN c.id IS NULL THEN d.content_id END AS orphan_content_id,
       CASE WHEN lower(trim(d.status)) IN ('pending', 'downloading', 'paused', 'completed', 'failed', 'cancelled')
            THEN lower(trim(d.status)) ELSE 'unknown' END AS status,
       d.progress, d.file_path, d.started_at, d.finished_at, d.status AS v1_status
FROM downloads_v1 d LEFT JOIN content c ON c.id = d.content_id;

CREATE VIEW migrate_v1_download_errors AS
SELECT id, id AS download_id,
       CASE WHEN error_message LIKE '%HTTP Error%' THEN 'http'
            WHEN error_message LIKE '%unavailable%' OR error_message LIKE '%private%' THEN 'unavailable'
            WHEN error_message LIKE '%timed out%' OR error_message LIKE '%connection%'
                 OR error_message LIKE '%network%' THEN 'network'
            WHEN error_message LIKE '%extract%' THEN 'extraction'
            ELSE 'other' END AS error_type,
       error_message, coalesce(finished_at, started_at) AS occurred_at
FROM downloads_v1
WHERE error_message IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- v2 → v1 views: the v1 rows the v2 data stands for (used by the rollback script on revert, and
-- by tests to prove the round trip is lossless). They read v2 tables only.
-- ---------------------------------------------------------------------------------------------

-- metadata: start from extra_json and put back every typed value that is set (a value the app
-- cleared is left out). The platform id is put back under its platform's key (by the seeded ids
-- 2 = tiktok, 3 = instagram, which survive a rename) unless extra_json still holds the same id as
-- a number. Text that was not a JSON object comes back verbatim while no typed value is set.
CREATE VIEW legacy_content_v1 AS
SELECT c.id, c.original_url AS url, c.title, c.author,
       CASE WHEN (CASE WHEN lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) GLOB '[a-z0-9]*'
                        AND lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) NOT GLOB '*[^a-z0-9._-]*'
                        AND length(lower(trim(c.v1_platform, ' ' || char(9, 10, 13)))) <= 32
                       THEN lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) ELSE 'unknown' END) IS pl.name
            THEN c.v1_platform ELSE pl.name END AS platform,
       CASE WHEN m.extra_json IS NULL
                 AND coalesce(c.platform_content_id, c.content_type, c.uploader_id, m.description,
                              m.duration_seconds, m.view_count, m.like_count, m.comment_count, m.upload_date,
                              q.width, q.height, q.fps, q.vcodec, q.acodec) IS NULL
            THEN m.raw_metadata
            ELSE json_set(coalesce(m.extra_json, '{}'),
              CASE WHEN c.platform_content_id IS NOT NULL
                        AND c.platform_content_id IS NOT (m.extra_json -> (CASE c.platform_id WHEN 2 THEN '$.aweme_id'
                                                          WHEN 3 THEN '$.pk' ELSE '$.id' END))
                   THEN CASE c.platform_id WHEN 2 THEN '$.aweme_id' WHEN 3 THEN '$.pk' ELSE '$.id' END
                   ELSE '$[0]' END, c.platform_content_id,
              CASE WHEN c.content_type IS NOT NULL THEN '$.content_type' ELSE '$[0]' END, c.content_type,
              CASE WHEN c.uploader_id IS NOT NULL THEN '$.uploader_id' ELSE '$[0]' END, c.uploader_id,
              CASE WHEN m.description IS NOT NULL THEN '$.description' ELSE '$[0]' END, m.description,
              CASE WHEN m.duration_seconds IS NOT NULL THEN '$.duration' ELSE '$[0]' END, m.duration_seconds,
              CASE WHEN m.view_count IS NOT NULL THEN '$.view_count' ELSE '$[0]' END, m.view_count,
              CASE WHEN m.like_count IS NOT NULL THEN '$.like_count' ELSE '$[0]' END, m.like_count,
              CASE WHEN m.comment_count IS NOT NULL THEN '$.comment_count' ELSE '$[0]' END, m.comment_count,
              CASE WHEN m.upload_date IS NOT NULL THEN '$.upload_date' ELSE '$[0]' END, replace(m.upload_date, '-', ''),
              CASE WHEN q.width IS NOT NULL THEN '$.width' ELSE '$[0]' END, q.width,
              CASE WHEN q.height IS NOT NULL THEN '$.height' ELSE '$[0]' END, q.height,
              CASE WHEN q.fps IS NOT NULL THEN '$.fps' ELSE '$[0]' END, q.fps,
              CASE WHEN q.vcodec IS NOT NULL THEN '$.vcodec' ELSE '$[0]' END, q.vcodec,
              CASE WHEN q.acodec IS NOT NULL THEN '$.acodec' ELSE '$[0]' END, q.acodec)
       END AS metadata,
       CASE WHEN s.id IS NULL THEN NULL
            WHEN s.extra_json IS NULL AND s.raw_info IS NOT NULL
                 AND coalesce(s.status, s.file_path, s.file_size, s.thumbnail_path) IS NULL THEN s.raw_info
            ELSE json_set(coalesce(s.extra_json, '{}'),
              CASE WHEN s.status IS NOT NULL THEN '$.status' ELSE '$[0]' END, s.status,
              CASE WHEN s.file_size IS NOT NULL THEN '$.file_size' ELSE '$[0]' END, s.file_size,
              CASE WHEN s.file_path IS NOT NULL THEN '$.file_path' ELSE '$[0]' END, s.file_path,
              CASE WHEN s.thumbnail_path IS NOT NULL THEN '$.thumbnail_path' ELSE '$[0]' END, s.thumbnail_path)
       END AS download_info,
       c.created_at
FROM content c
LEFT JOIN platforms pl ON pl.id = c.platform_id
LEFT JOIN content_metadata m ON m.content_id = c.id
LEFT JOIN quality_options q ON q.content_id = c.id AND q.is_selected = 1
-- the newest session is the one v1 showed
LEFT JOIN download_sessions s ON s.id = (SELECT max(s2.id) FROM download_sessions s2 WHERE s2.content_id = c.id);

CREATE VIEW legacy_downloads_v1 AS
SELECT d.id, coalesce(d.content_id, d.orphan_content_id) AS content_id,
       CASE WHEN (CASE WHEN lower(trim(d.v1_status)) IN ('pending', 'downloading', 'paused', 'completed', 'failed',
                                                         'cancelled')
                       THEN lower(trim(d.v1_status)) ELSE 'unknown' END) = d.status
            THEN d.v1_status ELSE d.status END AS status,
       d.progress, d.file_path,
       (SELECT e.error_message FROM download_errors e WHERE e.download_id = d.id ORDER BY e.id DESC LIMIT 1)
         AS error_message,
       d.started_at, d.finished_at
FROM downloads d;

-- ---------------------------------------------------------------------------------------------
-- the load
-- ---------------------------------------------------------------------------------------------

-- Platforms named by the data, in name order so ids do not depend on row order.
INSERT INTO platforms (name, display_name)
SELECT DISTINCT platform_name, upper(substr(platform_name, 1, 1)) || substr(platform_name, 2)
FROM v1_content_platform
WHERE platform_name NOT IN (SELECT name FROM platforms)
ORDER BY 1;

INSERT INTO content (id, platform_id, platform_content_id, original_url, title, author, uploader_id,
                     content_type, created_at, updated_at, v1_platform)
SELECT id, platform_id, platform_content_id, original_url, title, author, uploader_id,
       content_type, created_at, updated_at, v1_platform
FROM migrate_v1_content;

INSERT INTO content_metadata (content_id, description, duration_seconds, view_count, like_count, comment_count,
                              upload_date, extra_json, raw_metadata)
SELECT content_id, description, duration_seconds, view_count, like_count, comment_count,
       upload_date, extra_json, raw_metadata
FROM migrate_v1_content_metadata;

INSERT INTO quality_options (id, content_id, quality_label, width, height, fps, vcodec, acodec, is_selected)
SELECT id, content_id, quality_label, width, height, fps, vcodec, acodec, is_selected
FROM migrate_v1_quality_options;

INSERT INTO download_sessions (id, content_id, download_id, status, file_path, file_size, thumbnail_path,
                               extra_json, raw_info, created_at)
SELECT id, content_id, download_id, status, file_path, file_size, thumbnail_path, extra_json, raw_info, created_at
FROM migrate_v1_download_sessions;

INSERT INTO downloads (id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at,
                       v1_status)
SELECT id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at, v1_status
FROM migrate_v1_downloads;

INSERT INTO download_errors (id, download_id, error_type, error_message, occurred_at)
SELECT id, download_id, error_type, error_message, occurred_at
FROM migrate_v1_download_errors;

-- Secondary indexes of the v2 schema, built after the load: one sort is cheaper than keeping
-- them up to date row by row.
CREATE INDEX content_platform ON content (platform_id, platform_content_id);
CREATE INDEX content_url ON content (original_url);
CREATE INDEX content_created ON content (created_at);
CREATE INDEX download_sessions_content ON download_sessions (content_id);
CREATE INDEX downloads_content ON downloads (content_id);
CREATE INDEX downloads_orphan ON downloads (orphan_content_id) WHERE orphan_content_id IS NOT NULL;
CREATE INDEX downloads_status ON downloads (status);
CREATE INDEX download_errors_download ON download_errors (download_id);

-- A v1 row is rebuilt from its parent content/download. Deleting a child row (or moving it to
-- another parent) leaves no trace of the old parent in the child's key, so these triggers touch
-- the old parent with a no-op UPDATE: change capture on green then names the parent, and the
-- rollback script rebuilds it. Created after the load so the bulk inserts do not fire them.
CREATE TRIGGER quality_options_touch_content AFTER DELETE ON quality_options
BEGIN UPDATE content SET updated_at = updated_at WHERE id = OLD.content_id; END;
CREATE TRIGGER quality_options_touch_old_content AFTER UPDATE OF content_id ON quality_options
WHEN OLD.content_id IS NOT NEW.content_id
BEGIN UPDATE content SET updated_at = updated_at WHERE id = OLD.content_id; END;
CREATE TRIGGER download_sessions_touch_content AFTER DELETE ON download_sessions
BEGIN UPDATE content SET updated_at = updated_at WHERE id = OLD.content_id; END;
CREATE TRIGGER download_sessions_touch_old_content AFTER UPDATE OF content_id ON download_sessions
WHEN OLD.content_id IS NOT NEW.content_id
BEGIN UPDATE content SET updated_at = updated_at WHERE id = OLD.content_id; END;
CREATE TRIGGER download_errors_touch_download AFTER DELETE ON download_errors
BEGIN UPDATE downloads SET status = status WHERE id = OLD.download_id; END;
CREATE TRIGGER download_errors_touch_old_download AFTER UPDATE OF download_id ON download_errors
WHEN OLD.download_id IS NOT NEW.download_id
BEGIN UPDATE downloads SET status = status WHERE id = OLD.download_id; END;

-- records_processed: rows written to the step's table; total_records: rows in its v1 source.
UPDATE migration_status
SET status = 'completed',
    records_processed = CASE step
      WHEN 'platforms' THEN (SELECT count(*) FROM platforms)
      WHEN 'content' THEN (SELECT count(*) FROM content)
      WHEN 'content_metadata' THEN (SELECT count(*) FROM content_metadata)
      WHEN 'quality_options' THEN (SELECT count(*) FROM quality_options)
      WHEN 'download_sessions' THEN (SELECT count(*) FROM download_sessions)
      WHEN 'downloads' THEN (SELECT count(*) FROM downloads)
      WHEN 'download_errors' THEN (SELECT count(*) FROM download_errors) END,
    total_records = CASE
      WHEN step = 'platforms' THEN (SELECT count(*) FROM platforms)
      WHEN step IN ('downloads', 'download_errors') THEN (SELECT count(*) FROM downloads_v1)
      ELSE (SELECT count(*) FROM content_v1) END,
    started_at = coalesce(started_at, CURRENT_TIMESTAMP),
    completed_at = CURRENT_TIMESTAMP,
    error_message = NULL
WHERE migration_version = '2.0.0';
