-- 003: move every v1.2.1 row into the v2.0 tables created by 002, in the shape of the SDM
-- migration plan. Set-based: one INSERT ... SELECT per table, secondary indexes built after the
-- bulk load, no per-row work outside SQLite.
--
-- The v1 → v2 mapping is written once, as views, and used three ways: this file loads everything
-- through the migrate_v1_* views; 003_..._sync.sql re-derives the changed keys through the same
-- views; the legacy_* views (v2 → v1 shape) are what 003_..._rollback.sql copies back into blue.
-- The views stay in the v2 file next to content_v1/downloads_v1 (the release that drops the v1
-- tables drops them too).
--
-- Where each v1 metadata / download_info key goes (every key has exactly one home):
--   a typed content column when the plan has one and the JSON value has the column's type:
--     description, content_type, uploader_id → author_id, duration → duration_seconds, view_count,
--     like_count, comment_count, upload_date (yt-dlp's YYYYMMDD, a real date) → published_at
--     'YYYY-MM-DD'; download_info's status, file_size → file_size_bytes, file_path →
--     local_file_path, thumbnail_path
--   otherwise a content_metadata row (002 lists the metadata_type / data_type vocabulary):
--     the platform's own id → platform_specific (youtube_video_id, tiktok_video_id,
--     instagram_media_id); width, height, fps, vcodec, acodec → video_specs (resolution_width,
--     resolution_height, fps, video_codec, audio_codec); any other key, or a key whose value did
--     not fit its column ('3:45', "12345", -1, 212.0), → extra under its own name; other
--     download_info keys → download_info.
-- What happens to odd v1 values (nothing is dropped; validate checks it):
--   platform   lower(trim()) names a platform row; 'YouTube' and ' tiktok ' join youtube/tiktok, other
--              usable names ('vimeo', 'twitter') get their own platforms row, NULL/blank/garbage go to
--              'unknown'. content.v1_platform keeps the verbatim value.
--   JSON text  a number whose JSON text SQLite would not give back as written (1.50, 1e5, an integer
--              beyond 64 bits) is kept as that text (data_type 'json'); NULL stays NULL (no rows);
--              anything that is not a JSON object with keys ('N/A', '', '[..]', '{}', a blob, an
--              object with a duplicated key) is one 'raw' row holding the v1 value verbatim.
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

-- content_v1 with its JSON checked once: m (di) is the metadata (download_info) text only when it
-- is a JSON object without a duplicated key (json_type() raises an error on malformed text, hence
-- the nested CASE after json_valid()). DISTINCT is redundant (id is unique, so SQLite skips it) but
-- stops SQLite from flattening this view into the views that use it: m and di are computed once per
-- row instead of at every use, while WHERE id IN (...) from the sync script is still pushed down
-- into it as a primary-key search.
CREATE VIEW v1_content_parsed AS
SELECT DISTINCT id, url, title, author, platform, metadata, download_info, created_at, platform_name,
       CASE WHEN typeof(metadata) = 'text' AND json_valid(metadata)
            THEN CASE WHEN json_type(metadata) = 'object'
                      THEN CASE WHEN (SELECT count(*) = count(DISTINCT key) FROM json_each(metadata)) THEN metadata END
                 END
       END AS m,
       CASE WHEN typeof(download_info) = 'text' AND json_valid(download_info)
            THEN CASE WHEN json_type(download_info) = 'object'
                      THEN CASE WHEN (SELECT count(*) = count(DISTINCT key) FROM json_each(download_info))
                                THEN download_info END
                 END
       END AS di
FROM v1_content_platform;

-- Typed values. ok_<key> says the JSON value has exactly the column's type and passes its CHECK;
-- only then is it moved into the column (and no content_metadata row is written for the key), so
-- a revert can put the same JSON value back. BETWEEN 0 AND 2^63-1 also rejects integers too big
-- for SQLite (->> returns them as a lossy real).
CREATE VIEW v1_content_fields AS
SELECT *,
       CASE WHEN ok_content_type THEN m ->> '$.content_type' END AS content_type,
       CASE WHEN ok_uploader_id THEN m ->> '$.uploader_id' END AS author_id,
       CASE WHEN ok_description THEN m ->> '$.description' END AS description,
       CASE WHEN ok_duration THEN m ->> '$.duration' END AS duration_seconds,
       CASE WHEN ok_view_count THEN m ->> '$.view_count' END AS view_count,
       CASE WHEN ok_like_count THEN m ->> '$.like_count' END AS like_count,
       CASE WHEN ok_comment_count THEN m ->> '$.comment_count' END AS comment_count,
       CASE WHEN ok_upload_date THEN substr(m ->> '$.upload_date', 1, 4) || '-' || substr(m ->> '$.upload_date', 5, 2)
                                     || '-' || substr(m ->> '$.upload_date', 7, 2) END AS published_at,
       CASE WHEN ok_status THEN di ->> '$.status' END AS status,
       CASE WHEN ok_file_path THEN di ->> '$.file_path' END AS local_file_path,
       CASE WHEN ok_file_size THEN di ->> '$.file_size' END AS file_size_bytes,
       CASE WHEN ok_thumbnail_path THEN di ->> '$.thumbnail_path' END AS thumbnail_path
FROM (SELECT *,
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
             json_type(di, '$.status') = 'text' AS ok_status,
             json_type(di, '$.file_path') = 'text' AS ok_file_path,
             json_type(di, '$.file_size') = 'integer' AND di ->> '$.file_size' BETWEEN 0 AND 9223372036854775807
               AS ok_file_size,
             json_type(di, '$.thumbnail_path') = 'text' AS ok_thumbnail_path
      FROM v1_content_parsed);

-- LEFT JOIN: a missing platform row gives platform_id NULL, which fails loudly (NOT NULL)
-- instead of silently dropping the content row.
CREATE VIEW migrate_v1_content AS
SELECT f.id, pl.id AS platform_id, f.url AS original_url, f.title, f.description, f.content_type, f.status,
       f.author AS author_name, f.author_id, f.duration_seconds, f.file_size_bytes, f.view_count, f.like_count,
       f.comment_count, f.published_at, f.local_file_path, f.thumbnail_path, f.created_at,
       f.created_at AS updated_at, f.platform AS v1_platform
FROM v1_content_fields f LEFT JOIN platforms pl ON pl.name = f.platform_name;

-- One content_metadata row per key that did not go into a content column, and one 'raw' row per
-- non-NULL value that is not a JSON object with keys. The value keeps its type: text, an integer
-- or a real whose JSON text SQLite gives back as written, 1/0 for true/false, NULL for null;
-- anything else (an array, an object, 1.50, 1e5, 2^80) is its JSON text, data_type 'json'.
CREATE VIEW migrate_v1_content_metadata AS
SELECT f.id AS content_id,
       CASE WHEN (f.platform_name = 'youtube' AND j.key = 'id') OR (f.platform_name = 'tiktok' AND j.key = 'aweme_id')
                 OR (f.platform_name = 'instagram' AND j.key = 'pk') THEN 'platform_specific'
            WHEN j.key IN ('width', 'height', 'fps', 'vcodec', 'acodec') THEN 'video_specs'
            ELSE 'extra' END AS metadata_type,
       CASE WHEN f.platform_name = 'youtube' AND j.key = 'id' THEN 'youtube_video_id'
            WHEN f.platform_name = 'tiktok' AND j.key = 'aweme_id' THEN 'tiktok_video_id'
            WHEN f.platform_name = 'instagram' AND j.key = 'pk' THEN 'instagram_media_id'
            WHEN j.key = 'width' THEN 'resolution_width'
            WHEN j.key = 'height' THEN 'resolution_height'
            WHEN j.key = 'vcodec' THEN 'video_codec'
            WHEN j.key = 'acodec' THEN 'audio_codec'
            ELSE j.key END AS metadata_key,
       CASE WHEN j.type IN ('integer', 'real') AND json_quote(j.atom) IS NOT (f.m -> j.fullkey) THEN f.m -> j.fullkey
            WHEN j.type IN ('array', 'object') THEN j.value ELSE j.atom END AS metadata_value,
       CASE WHEN j.type IN ('integer', 'real') AND json_quote(j.atom) IS NOT (f.m -> j.fullkey) THEN 'json'
            ELSE CASE j.type WHEN 'text' THEN 'string' WHEN 'real' THEN 'float' WHEN 'true' THEN 'boolean'
                             WHEN 'false' THEN 'boolean' WHEN 'array' THEN 'json' WHEN 'object' THEN 'json'
                             ELSE j.type END END AS data_type,
       f.created_at
FROM v1_content_fields f, json_each(f.m) j
WHERE NOT ((j.key = 'description' AND f.ok_description IS 1) OR (j.key = 'content_type' AND f.ok_content_type IS 1)
           OR (j.key = 'uploader_id' AND f.ok_uploader_id IS 1) OR (j.key = 'duration' AND f.ok_duration IS 1)
           OR (j.key = 'view_count' AND f.ok_view_count IS 1) OR (j.key = 'like_count' AND f.ok_like_count IS 1)
           OR (j.key = 'comment_count' AND f.ok_comment_count IS 1) OR (j.key = 'upload_date' AND f.ok_upload_date IS 1))
UNION ALL
SELECT f.id, 'download_info', j.key,
       CASE WHEN j.type IN ('integer', 'real') AND json_quote(j.atom) IS NOT (f.di -> j.fullkey) THEN f.di -> j.fullkey
            WHEN j.type IN ('array', 'object') THEN j.value ELSE j.atom END,
       CASE WHEN j.type IN ('integer', 'real') AND json_quote(j.atom) IS NOT (f.di -> j.fullkey) THEN 'json'
            ELSE CASE j.type WHEN 'text' THEN 'string' WHEN 'real' THEN 'float' WHEN 'true' THEN 'boolean'
                             WHEN 'false' THEN 'boolean' WHEN 'array' THEN 'json' WHEN 'object' THEN 'json'
                             ELSE j.type END END,
       f.created_at
FROM v1_content_fields f, json_each(f.di) j
WHERE NOT ((j.key = 'status' AND f.ok_status IS 1) OR (j.key = 'file_path' AND f.ok_file_path IS 1)
           OR (j.key = 'file_size' AND f.ok_file_size IS 1) OR (j.key = 'thumbnail_path' AND f.ok_thumbnail_path IS 1))
UNION ALL
SELECT f.id, 'raw', 'metadata', f.metadata,
       CASE typeof(f.metadata) WHEN 'blob' THEN 'blob' WHEN 'integer' THEN 'integer' WHEN 'real' THEN 'float'
            ELSE CASE WHEN json_valid(f.metadata) THEN 'json' ELSE 'string' END END,
       f.created_at
FROM v1_content_fields f
WHERE f.metadata IS NOT NULL AND (f.m IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(f.m)))
UNION ALL
SELECT f.id, 'raw', 'download_info', f.download_info,
       CASE typeof(f.download_info) WHEN 'blob' THEN 'blob' WHEN 'integer' THEN 'integer' WHEN 'real' THEN 'float'
            ELSE CASE WHEN json_valid(f.download_info) THEN 'json' ELSE 'string' END END,
       f.created_at
FROM v1_content_fields f
WHERE f.download_info IS NOT NULL AND (f.di IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(f.di)));

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

-- Each content_metadata row as the v1 key and JSON value it stands for (target: which v1 column).
-- The names map back without looking at the platform (a content the application moved to another
-- platform keeps its keys); a name the plan has no v1 key for (one the application added) is used
-- as it is.
CREATE VIEW legacy_metadata_keys AS
SELECT content_id,
       CASE metadata_type WHEN 'download_info' THEN 'download_info' ELSE 'metadata' END AS target,
       CASE metadata_type
         WHEN 'platform_specific' THEN CASE metadata_key WHEN 'youtube_video_id' THEN 'id'
                                                         WHEN 'tiktok_video_id' THEN 'aweme_id'
                                                         WHEN 'instagram_media_id' THEN 'pk' ELSE metadata_key END
         WHEN 'video_specs' THEN CASE metadata_key WHEN 'resolution_width' THEN 'width'
                                                   WHEN 'resolution_height' THEN 'height'
                                                   WHEN 'video_codec' THEN 'vcodec'
                                                   WHEN 'audio_codec' THEN 'acodec' ELSE metadata_key END
         ELSE metadata_key END AS v1_key,
       CASE data_type
         WHEN 'json' THEN CASE WHEN json_valid(metadata_value) THEN metadata_value ELSE json_quote(metadata_value) END
         WHEN 'null' THEN 'null'
         WHEN 'boolean' THEN CASE WHEN metadata_value THEN 'true' ELSE 'false' END
         WHEN 'string' THEN json_quote(CAST(metadata_value AS TEXT))
         WHEN 'integer' THEN json_quote(CASE WHEN typeof(metadata_value) IN ('integer', 'real') THEN metadata_value
                                             ELSE CAST(metadata_value AS INTEGER) END)
         WHEN 'float' THEN json_quote(CASE WHEN typeof(metadata_value) IN ('integer', 'real') THEN metadata_value
                                           ELSE CAST(metadata_value AS REAL) END)
         ELSE json_quote(CASE WHEN typeof(metadata_value) = 'blob' THEN hex(metadata_value) ELSE metadata_value END)
       END AS json_value
FROM content_metadata
WHERE metadata_type <> 'raw';

-- metadata (download_info): a JSON object of every key that has a home, typed columns and rows;
-- with none, the 'raw' row verbatim, or NULL.
CREATE VIEW legacy_content_v1 AS
SELECT c.id, c.original_url AS url, c.title, c.author_name AS author,
       CASE WHEN (CASE WHEN lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) GLOB '[a-z0-9]*'
                        AND lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) NOT GLOB '*[^a-z0-9._-]*'
                        AND length(lower(trim(c.v1_platform, ' ' || char(9, 10, 13)))) <= 32
                       THEN lower(trim(c.v1_platform, ' ' || char(9, 10, 13))) ELSE 'unknown' END) IS pl.name
            THEN c.v1_platform ELSE pl.name END AS platform,
       coalesce(
         (SELECT '{' || group_concat(json_quote(k) || ':' || v, ',') || '}'
          FROM (SELECT 'content_type' AS k, json_quote(c.content_type) AS v WHERE c.content_type IS NOT NULL
                UNION ALL SELECT 'uploader_id', json_quote(c.author_id) WHERE c.author_id IS NOT NULL
                UNION ALL SELECT 'description', json_quote(c.description) WHERE c.description IS NOT NULL
                UNION ALL SELECT 'duration', json_quote(c.duration_seconds) WHERE c.duration_seconds IS NOT NULL
                UNION ALL SELECT 'view_count', json_quote(c.view_count) WHERE c.view_count IS NOT NULL
                UNION ALL SELECT 'like_count', json_quote(c.like_count) WHERE c.like_count IS NOT NULL
                UNION ALL SELECT 'comment_count', json_quote(c.comment_count) WHERE c.comment_count IS NOT NULL
                UNION ALL SELECT 'upload_date', json_quote(coalesce(strftime('%Y%m%d', c.published_at), c.published_at))
                          WHERE c.published_at IS NOT NULL
                UNION ALL SELECT x.v1_key, x.json_value FROM legacy_metadata_keys x
                          WHERE x.content_id = c.id AND x.target = 'metadata')),
         (SELECT r.metadata_value FROM content_metadata r
          WHERE r.content_id = c.id AND r.metadata_type = 'raw' AND r.metadata_key = 'metadata')) AS metadata,
       coalesce(
         (SELECT '{' || group_concat(json_quote(k) || ':' || v, ',') || '}'
          FROM (SELECT 'status' AS k, json_quote(c.status) AS v WHERE c.status IS NOT NULL
                UNION ALL SELECT 'file_size', json_quote(c.file_size_bytes) WHERE c.file_size_bytes IS NOT NULL
                UNION ALL SELECT 'file_path', json_quote(c.local_file_path) WHERE c.local_file_path IS NOT NULL
                UNION ALL SELECT 'thumbnail_path', json_quote(c.thumbnail_path) WHERE c.thumbnail_path IS NOT NULL
                UNION ALL SELECT x.v1_key, x.json_value FROM legacy_metadata_keys x
                          WHERE x.content_id = c.id AND x.target = 'download_info')),
         (SELECT r.metadata_value FROM content_metadata r
          WHERE r.content_id = c.id AND r.metadata_type = 'raw' AND r.metadata_key = 'download_info')) AS download_info,
       c.created_at
FROM content c
LEFT JOIN platforms pl ON pl.id = c.platform_id;

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

-- The plan's data_integrity_monitor, as a view SQLite accepts: one row per check with the number
-- of rows that break it (0 when the data is sound). `bluegreen check` reads it (003_..._check.sql,
-- check data_integrity_monitor) next to the detailed checks that list the rows.
CREATE VIEW data_integrity_monitor AS
SELECT 'orphaned_metadata' AS check_name,
       (SELECT count(*) FROM content_metadata m WHERE NOT EXISTS (SELECT 1 FROM content c WHERE c.id = m.content_id))
         AS issue_count
UNION ALL
SELECT 'missing_platform_references',
       (SELECT count(*) FROM content c WHERE NOT EXISTS (SELECT 1 FROM platforms p WHERE p.id = c.platform_id))
UNION ALL
SELECT 'duplicate_platform_ids',
       (SELECT count(*) FROM (SELECT 1 FROM content_metadata WHERE metadata_type = 'platform_specific'
                              GROUP BY metadata_key, metadata_value HAVING count(*) > 1))
UNION ALL
SELECT 'downloads_without_content',
       (SELECT count(*) FROM downloads d WHERE d.content_id IS NULL AND d.orphan_content_id IS NULL)
UNION ALL
SELECT 'errors_without_download',
       (SELECT count(*) FROM download_errors e WHERE NOT EXISTS (SELECT 1 FROM downloads d WHERE d.id = e.download_id));

-- ---------------------------------------------------------------------------------------------
-- the load
-- ---------------------------------------------------------------------------------------------

-- Platforms named by the data, in name order so ids do not depend on row order.
INSERT INTO platforms (name, display_name)
SELECT DISTINCT platform_name, upper(substr(platform_name, 1, 1)) || substr(platform_name, 2)
FROM v1_content_platform
WHERE platform_name NOT IN (SELECT name FROM platforms)
ORDER BY 1;

INSERT INTO content (id, platform_id, original_url, title, description, content_type, status, author_name, author_id,
                     duration_seconds, file_size_bytes, view_count, like_count, comment_count, published_at,
                     local_file_path, thumbnail_path, created_at, updated_at, v1_platform)
SELECT id, platform_id, original_url, title, description, content_type, status, author_name, author_id,
       duration_seconds, file_size_bytes, view_count, like_count, comment_count, published_at,
       local_file_path, thumbnail_path, created_at, updated_at, v1_platform
FROM migrate_v1_content;

-- In key order: the WITHOUT ROWID table's b-tree is filled by appending.
INSERT INTO content_metadata (content_id, metadata_type, metadata_key, metadata_value, data_type, created_at)
SELECT content_id, metadata_type, metadata_key, metadata_value, data_type, created_at
FROM migrate_v1_content_metadata ORDER BY content_id, metadata_type, metadata_key;

INSERT INTO downloads (id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at,
                       v1_status)
SELECT id, content_id, orphan_content_id, status, progress, file_path, started_at, finished_at, v1_status
FROM migrate_v1_downloads;

INSERT INTO download_errors (id, download_id, error_type, error_message, occurred_at)
SELECT id, download_id, error_type, error_message, occurred_at
FROM migrate_v1_download_errors;

-- Secondary indexes of the v2 schema, built after the load: one sort is cheaper than keeping
-- them up to date row by row.
CREATE INDEX content_platform_created ON content (platform_id, created_at);
CREATE INDEX content_url ON content (original_url);
CREATE INDEX content_created ON content (created_at);
CREATE INDEX content_published ON content (published_at);
CREATE INDEX content_metadata_lookup ON content_metadata (metadata_key, metadata_value);
CREATE INDEX downloads_content ON downloads (content_id);
CREATE INDEX downloads_orphan ON downloads (orphan_content_id) WHERE orphan_content_id IS NOT NULL;
CREATE INDEX downloads_status ON downloads (status);
CREATE INDEX download_errors_download ON download_errors (download_id);
CREATE INDEX download_sessions_content ON download_sessions (content_id);

-- A v1 downloads row is rebuilt from its download. Deleting an error (or moving it to another
-- download) leaves no trace of the old download in the error's key, so these triggers touch the
-- old download with a no-op UPDATE: change capture on green then names it, and the rollback
-- script rebuilds it. (content_metadata needs none: its key starts with its content_id.) Created
-- after the load so the bulk inserts do not fire them.
CREATE TRIGGER download_errors_touch_download AFTER DELETE ON download_errors
BEGIN UPDATE downloads SET status = status WHERE id = OLD.download_id; END;
CREATE TRIGGER download_errors_touch_old_download AFTER UPDATE OF download_id ON download_errors
WHEN OLD.download_id IS NOT NEW.download_id
BEGIN UPDATE downloads SET status = status WHERE id = OLD.download_id; END;

-- The audit trail. updated_at is kept true: an UPDATE of a content row that does not set it
-- (or sets it to its old value, as the touch triggers above do) gets the current time; one that
-- sets it keeps what it set. A change to a content's metadata rows touches the content. Every
-- application write to content leaves a content_history row (the columns that changed, old and
-- new values; a BLOB value as its X'..' literal); the updated_at bump alone leaves none.
-- bluegreen's connections run with triggers off, so the load above, the sync script and replay
-- never fire these: v2 rows derived from v1 keep updated_at = created_at and no history.
CREATE TRIGGER content_touch_updated_at AFTER UPDATE ON content
WHEN NEW.updated_at IS OLD.updated_at AND OLD.updated_at IS NOT CURRENT_TIMESTAMP
BEGIN UPDATE content SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END;
CREATE TRIGGER content_metadata_insert_touches_content AFTER INSERT ON content_metadata
BEGIN UPDATE content SET updated_at = updated_at WHERE id = NEW.content_id; END;
CREATE TRIGGER content_metadata_update_touches_content AFTER UPDATE ON content_metadata
BEGIN UPDATE content SET updated_at = updated_at WHERE id IN (OLD.content_id, NEW.content_id); END;
CREATE TRIGGER content_metadata_delete_touches_content AFTER DELETE ON content_metadata
BEGIN UPDATE content SET updated_at = updated_at WHERE id = OLD.content_id; END;

-- records_processed: rows written to the step's table; total_records: rows in its v1 source.
UPDATE migration_status
SET status = 'completed',
    records_processed = CASE migration_id
      WHEN '2.0.0:platforms' THEN (SELECT count(*) FROM platforms)
      WHEN '2.0.0:content' THEN (SELECT count(*) FROM content)
      WHEN '2.0.0:content_metadata' THEN (SELECT count(*) FROM content_metadata)
      WHEN '2.0.0:downloads' THEN (SELECT count(*) FROM downloads)
      WHEN '2.0.0:download_errors' THEN (SELECT count(*) FROM download_errors) END,
    total_records = CASE
      WHEN migration_id = '2.0.0:platforms' THEN (SELECT count(*) FROM platforms)
      WHEN migration_id IN ('2.0.0:downloads', '2.0.0:download_errors') THEN (SELECT count(*) FROM downloads_v1)
      ELSE (SELECT count(*) FROM content_v1) END,
    started_at = coalesce(started_at, CURRENT_TIMESTAMP),
    completed_at = CURRENT_TIMESTAMP,
    error_message = NULL
WHERE migration_id LIKE '2.0.0:%';

CREATE TRIGGER content_history_insert AFTER INSERT ON content
BEGIN
  INSERT INTO content_history (content_id, operation, new_values) VALUES (NEW.id, 'insert', json_object('platform_id', CASE WHEN typeof(NEW.platform_id) = 'blob' THEN 'x''' || hex(NEW.platform_id) || '''' ELSE NEW.platform_id END, 'original_url', CASE WHEN typeof(NEW.original_url) = 'blob' THEN 'x''' || hex(NEW.original_url) || '''' ELSE NEW.original_url END, 'title', CASE WHEN typeof(NEW.title) = 'blob' THEN 'x''' || hex(NEW.title) || '''' ELSE NEW.title END, 'description', CASE WHEN typeof(NEW.description) = 'blob' THEN 'x''' || hex(NEW.description) || '''' ELSE NEW.description END, 'content_type', CASE WHEN typeof(NEW.content_type) = 'blob' THEN 'x''' || hex(NEW.content_type) || '''' ELSE NEW.content_type END, 'status', CASE WHEN typeof(NEW.status) = 'blob' THEN 'x''' || hex(NEW.status) || '''' ELSE NEW.status END, 'author_name', CASE WHEN typeof(NEW.author_name) = 'blob' THEN 'x''' || hex(NEW.author_name) || '''' ELSE NEW.author_name END, 'author_id', CASE WHEN typeof(NEW.author_id) = 'blob' THEN 'x''' || hex(NEW.author_id) || '''' ELSE NEW.author_id END, 'duration_seconds', CASE WHEN typeof(NEW.duration_seconds) = 'blob' THEN 'x''' || hex(NEW.duration_seconds) || '''' ELSE NEW.duration_seconds END, 'file_size_bytes', CASE WHEN typeof(NEW.file_size_bytes) = 'blob' THEN 'x''' || hex(NEW.file_size_bytes) || '''' ELSE NEW.file_size_bytes END, 'view_count', CASE WHEN typeof(NEW.view_count) = 'blob' THEN 'x''' || hex(NEW.view_count) || '''' ELSE NEW.view_count END, 'like_count', CASE WHEN typeof(NEW.like_count) = 'blob' THEN 'x''' || hex(NEW.like_count) || '''' ELSE NEW.like_count END, 'comment_count', CASE WHEN typeof(NEW.comment_count) = 'blob' THEN 'x''' || hex(NEW.comment_count) || '''' ELSE NEW.comment_count END, 'published_at', CASE WHEN typeof(NEW.published_at) = 'blob' THEN 'x''' || hex(NEW.published_at) || '''' ELSE NEW.published_at END, 'local_file_path', CASE WHEN typeof(NEW.local_file_path) = 'blob' THEN 'x''' || hex(NEW.local_file_path) || '''' ELSE NEW.local_file_path END, 'thumbnail_path', CASE WHEN typeof(NEW.thumbnail_path) = 'blob' THEN 'x''' || hex(NEW.thumbnail_path) || '''' ELSE NEW.thumbnail_path END, 'created_at', CASE WHEN typeof(NEW.created_at) = 'blob' THEN 'x''' || hex(NEW.created_at) || '''' ELSE NEW.created_at END, 'v1_platform', CASE WHEN typeof(NEW.v1_platform) = 'blob' THEN 'x''' || hex(NEW.v1_platform) || '''' ELSE NEW.v1_platform END, 'updated_at', CASE WHEN typeof(NEW.updated_at) = 'blob' THEN 'x''' || hex(NEW.updated_at) || '''' ELSE NEW.updated_at END));
END;
CREATE TRIGGER content_history_update AFTER UPDATE ON content
BEGIN
  INSERT INTO content_history (content_id, operation, changed_columns, old_values, new_values)
  SELECT NEW.id, 'update', json_group_array(name), json_group_object(name, o), json_group_object(name, n)
  FROM (SELECT 'id' AS name, OLD.id AS o, NEW.id AS n WHERE OLD.id IS NOT NEW.id
        UNION ALL SELECT 'platform_id', CASE WHEN typeof(OLD.platform_id) = 'blob' THEN 'x''' || hex(OLD.platform_id) || '''' ELSE OLD.platform_id END, CASE WHEN typeof(NEW.platform_id) = 'blob' THEN 'x''' || hex(NEW.platform_id) || '''' ELSE NEW.platform_id END WHERE OLD.platform_id IS NOT NEW.platform_id
        UNION ALL SELECT 'original_url', CASE WHEN typeof(OLD.original_url) = 'blob' THEN 'x''' || hex(OLD.original_url) || '''' ELSE OLD.original_url END, CASE WHEN typeof(NEW.original_url) = 'blob' THEN 'x''' || hex(NEW.original_url) || '''' ELSE NEW.original_url END WHERE OLD.original_url IS NOT NEW.original_url
        UNION ALL SELECT 'title', CASE WHEN typeof(OLD.title) = 'blob' THEN 'x''' || hex(OLD.title) || '''' ELSE OLD.title END, CASE WHEN typeof(NEW.title) = 'blob' THEN 'x''' || hex(NEW.title) || '''' ELSE NEW.title END WHERE OLD.title IS NOT NEW.title
        UNION ALL SELECT 'description', CASE WHEN typeof(OLD.description) = 'blob' THEN 'x''' || hex(OLD.description) || '''' ELSE OLD.description END, CASE WHEN typeof(NEW.description) = 'blob' THEN 'x''' || hex(NEW.description) || '''' ELSE NEW.description END WHERE OLD.description IS NOT NEW.description
        UNION ALL SELECT 'content_type', CASE WHEN typeof(OLD.content_type) = 'blob' THEN 'x''' || hex(OLD.content_type) || '''' ELSE OLD.content_type END, CASE WHEN typeof(NEW.content_type) = 'blob' THEN 'x''' || hex(NEW.content_type) || '''' ELSE NEW.content_type END WHERE OLD.content_type IS NOT NEW.content_type
        UNION ALL SELECT 'status', CASE WHEN typeof(OLD.status) = 'blob' THEN 'x''' || hex(OLD.status) || '''' ELSE OLD.status END, CASE WHEN typeof(NEW.status) = 'blob' THEN 'x''' || hex(NEW.status) || '''' ELSE NEW.status END WHERE OLD.status IS NOT NEW.status
        UNION ALL SELECT 'author_name', CASE WHEN typeof(OLD.author_name) = 'blob' THEN 'x''' || hex(OLD.author_name) || '''' ELSE OLD.author_name END, CASE WHEN typeof(NEW.author_name) = 'blob' THEN 'x''' || hex(NEW.author_name) || '''' ELSE NEW.author_name END WHERE OLD.author_name IS NOT NEW.author_name
        UNION ALL SELECT 'author_id', CASE WHEN typeof(OLD.author_id) = 'blob' THEN 'x''' || hex(OLD.author_id) || '''' ELSE OLD.author_id END, CASE WHEN typeof(NEW.author_id) = 'blob' THEN 'x''' || hex(NEW.author_id) || '''' ELSE NEW.author_id END WHERE OLD.author_id IS NOT NEW.author_id
        UNION ALL SELECT 'duration_seconds', CASE WHEN typeof(OLD.duration_seconds) = 'blob' THEN 'x''' || hex(OLD.duration_seconds) || '''' ELSE OLD.duration_seconds END, CASE WHEN typeof(NEW.duration_seconds) = 'blob' THEN 'x''' || hex(NEW.duration_seconds) || '''' ELSE NEW.duration_seconds END WHERE OLD.duration_seconds IS NOT NEW.duration_seconds
        UNION ALL SELECT 'file_size_bytes', CASE WHEN typeof(OLD.file_size_bytes) = 'blob' THEN 'x''' || hex(OLD.file_size_bytes) || '''' ELSE OLD.file_size_bytes END, CASE WHEN typeof(NEW.file_size_bytes) = 'blob' THEN 'x''' || hex(NEW.file_size_bytes) || '''' ELSE NEW.file_size_bytes END WHERE OLD.file_size_bytes IS NOT NEW.file_size_bytes
        UNION ALL SELECT 'view_count', CASE WHEN typeof(OLD.view_count) = 'blob' THEN 'x''' || hex(OLD.view_count) || '''' ELSE OLD.view_count END, CASE WHEN typeof(NEW.view_count) = 'blob' THEN 'x''' || hex(NEW.view_count) || '''' ELSE NEW.view_count END WHERE OLD.view_count IS NOT NEW.view_count
        UNION ALL SELECT 'like_count', CASE WHEN typeof(OLD.like_count) = 'blob' THEN 'x''' || hex(OLD.like_count) || '''' ELSE OLD.like_count END, CASE WHEN typeof(NEW.like_count) = 'blob' THEN 'x''' || hex(NEW.like_count) || '''' ELSE NEW.like_count END WHERE OLD.like_count IS NOT NEW.like_count
        UNION ALL SELECT 'comment_count', CASE WHEN typeof(OLD.comment_count) = 'blob' THEN 'x''' || hex(OLD.comment_count) || '''' ELSE OLD.comment_count END, CASE WHEN typeof(NEW.comment_count) = 'blob' THEN 'x''' || hex(NEW.comment_count) || '''' ELSE NEW.comment_count END WHERE OLD.comment_count IS NOT NEW.comment_count
        UNION ALL SELECT 'published_at', CASE WHEN typeof(OLD.published_at) = 'blob' THEN 'x''' || hex(OLD.published_at) || '''' ELSE OLD.published_at END, CASE WHEN typeof(NEW.published_at) = 'blob' THEN 'x''' || hex(NEW.published_at) || '''' ELSE NEW.published_at END WHERE OLD.published_at IS NOT NEW.published_at
        UNION ALL SELECT 'local_file_path', CASE WHEN typeof(OLD.local_file_path) = 'blob' THEN 'x''' || hex(OLD.local_file_path) || '''' ELSE OLD.local_file_path END, CASE WHEN typeof(NEW.local_file_path) = 'blob' THEN 'x''' || hex(NEW.local_file_path) || '''' ELSE NEW.local_file_path END WHERE OLD.local_file_path IS NOT NEW.local_file_path
        UNION ALL SELECT 'thumbnail_path', CASE WHEN typeof(OLD.thumbnail_path) = 'blob' THEN 'x''' || hex(OLD.thumbnail_path) || '''' ELSE OLD.thumbnail_path END, CASE WHEN typeof(NEW.thumbnail_path) = 'blob' THEN 'x''' || hex(NEW.thumbnail_path) || '''' ELSE NEW.thumbnail_path END WHERE OLD.thumbnail_path IS NOT NEW.thumbnail_path
        UNION ALL SELECT 'created_at', CASE WHEN typeof(OLD.created_at) = 'blob' THEN 'x''' || hex(OLD.created_at) || '''' ELSE OLD.created_at END, CASE WHEN typeof(NEW.created_at) = 'blob' THEN 'x''' || hex(NEW.created_at) || '''' ELSE NEW.created_at END WHERE OLD.created_at IS NOT NEW.created_at
        UNION ALL SELECT 'v1_platform', CASE WHEN typeof(OLD.v1_platform) = 'blob' THEN 'x''' || hex(OLD.v1_platform) || '''' ELSE OLD.v1_platform END, CASE WHEN typeof(NEW.v1_platform) = 'blob' THEN 'x''' || hex(NEW.v1_platform) || '''' ELSE NEW.v1_platform END WHERE OLD.v1_platform IS NOT NEW.v1_platform)
  HAVING count(*) > 0;
END;
CREATE TRIGGER content_history_delete AFTER DELETE ON content
BEGIN
  INSERT INTO content_history (content_id, operation, old_values) VALUES (OLD.id, 'delete', json_object('platform_id', CASE WHEN typeof(OLD.platform_id) = 'blob' THEN 'x''' || hex(OLD.platform_id) || '''' ELSE OLD.platform_id END, 'original_url', CASE WHEN typeof(OLD.original_url) = 'blob' THEN 'x''' || hex(OLD.original_url) || '''' ELSE OLD.original_url END, 'title', CASE WHEN typeof(OLD.title) = 'blob' THEN 'x''' || hex(OLD.title) || '''' ELSE OLD.title END, 'description', CASE WHEN typeof(OLD.description) = 'blob' THEN 'x''' || hex(OLD.description) || '''' ELSE OLD.description END, 'content_type', CASE WHEN typeof(OLD.content_type) = 'blob' THEN 'x''' || hex(OLD.content_type) || '''' ELSE OLD.content_type END, 'status', CASE WHEN typeof(OLD.status) = 'blob' THEN 'x''' || hex(OLD.status) || '''' ELSE OLD.status END, 'author_name', CASE WHEN typeof(OLD.author_name) = 'blob' THEN 'x''' || hex(OLD.author_name) || '''' ELSE OLD.author_name END, 'author_id', CASE WHEN typeof(OLD.author_id) = 'blob' THEN 'x''' || hex(OLD.author_id) || '''' ELSE OLD.author_id END, 'duration_seconds', CASE WHEN typeof(OLD.duration_seconds) = 'blob' THEN 'x''' || hex(OLD.duration_seconds) || '''' ELSE OLD.duration_seconds END, 'file_size_bytes', CASE WHEN typeof(OLD.file_size_bytes) = 'blob' THEN 'x''' || hex(OLD.file_size_bytes) || '''' ELSE OLD.file_size_bytes END, 'view_count', CASE WHEN typeof(OLD.view_count) = 'blob' THEN 'x''' || hex(OLD.view_count) || '''' ELSE OLD.view_count END, 'like_count', CASE WHEN typeof(OLD.like_count) = 'blob' THEN 'x''' || hex(OLD.like_count) || '''' ELSE OLD.like_count END, 'comment_count', CASE WHEN typeof(OLD.comment_count) = 'blob' THEN 'x''' || hex(OLD.comment_count) || '''' ELSE OLD.comment_count END, 'published_at', CASE WHEN typeof(OLD.published_at) = 'blob' THEN 'x''' || hex(OLD.published_at) || '''' ELSE OLD.published_at END, 'local_file_path', CASE WHEN typeof(OLD.local_file_path) = 'blob' THEN 'x''' || hex(OLD.local_file_path) || '''' ELSE OLD.local_file_path END, 'thumbnail_path', CASE WHEN typeof(OLD.thumbnail_path) = 'blob' THEN 'x''' || hex(OLD.thumbnail_path) || '''' ELSE OLD.thumbnail_path END, 'created_at', CASE WHEN typeof(OLD.created_at) = 'blob' THEN 'x''' || hex(OLD.created_at) || '''' ELSE OLD.created_at END, 'v1_platform', CASE WHEN typeof(OLD.v1_platform) = 'blob' THEN 'x''' || hex(OLD.v1_platform) || '''' ELSE OLD.v1_platform END, 'updated_at', CASE WHEN typeof(OLD.updated_at) = 'blob' THEN 'x''' || hex(OLD.updated_at) || '''' ELSE OLD.updated_at END));
END;
