-- Performance gate for 003 (bluegreen/gates/perfgate.py): the queries the v2 application runs
-- most, each timed on blue and on green before cutover, and stored with their timings in green's
-- migration_performance_tests (the plan's table). While blue is still v1.2.1, the `-- on blue:`
-- form (the same question asked of content_v1 / downloads_v1) is the baseline; once v2 is live,
-- later deploys time the v2 form on both files, so a migration that drops one of these indexes
-- is refused as a new full scan. The first two are the plan's (006).

-- benchmark: content_listing_by_platform
-- the plan's: one platform's library page, newest first: content_platform_created index.
SELECT c.id, c.title, c.author_name, c.published_at FROM content AS c
WHERE c.platform_id = (SELECT id FROM platforms WHERE name = 'youtube')
ORDER BY c.created_at DESC LIMIT 50;
-- on blue:
SELECT id, title, author FROM content_v1 WHERE platform = 'youtube' ORDER BY created_at DESC LIMIT 50;

-- benchmark: metadata_lookup
-- the plan's: a content by one metadata key and value (here the platform's own id, for
-- de-duplication on paste): content_metadata_lookup index (metadata_key, metadata_value).
SELECT c.id, c.title FROM content_metadata AS m JOIN content AS c ON c.id = m.content_id
WHERE m.metadata_key = 'youtube_video_id' AND m.metadata_value = 'bluegreen';
-- on blue:
SELECT id, title FROM content_v1
WHERE lower(trim(platform)) = 'youtube' AND json_valid(metadata) AND json_extract(metadata, '$.id') = 'bluegreen';

-- benchmark: content_by_url
-- "is this URL already in the library?" on every paste: content_url index.
SELECT id, title FROM content WHERE original_url = 'https://www.youtube.com/watch?v=bluegreen';
-- on blue:
SELECT id, title FROM content_v1 WHERE url = 'https://www.youtube.com/watch?v=bluegreen';

-- benchmark: latest_content_page
-- the library's first page, newest first: content_created index.
SELECT id, title, author_name FROM content ORDER BY created_at DESC LIMIT 50;
-- on blue:
SELECT id, title, author FROM content_v1 ORDER BY created_at DESC LIMIT 50;

-- benchmark: downloads_of_content
-- a content's download jobs: downloads_content index.
SELECT id, status, progress FROM downloads WHERE content_id = 42;
-- on blue:
SELECT id, status, progress FROM downloads_v1 WHERE content_id = 42;

-- benchmark: failed_downloads
-- the "failed" tab: downloads_status index.
SELECT id, file_path FROM downloads WHERE status = 'failed';
-- on blue:
SELECT id, file_path FROM downloads_v1 WHERE lower(trim(status)) IN ('failed', 'error');

-- benchmark: content_detail
-- one item's page: content and all its metadata rows, by primary key and index.
SELECT c.title, c.view_count, c.duration_seconds, m.metadata_key, m.metadata_value
FROM content AS c
LEFT JOIN content_metadata AS m ON m.content_id = c.id
WHERE c.id = 42;
-- on blue:
SELECT title, json_extract(metadata, '$.view_count'), json_extract(metadata, '$.duration') FROM content_v1
WHERE id = 42 AND json_valid(metadata);
