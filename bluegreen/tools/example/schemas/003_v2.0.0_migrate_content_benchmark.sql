-- Performance gate for 003 (bluegreen/perfgate.py): the queries the v2 application runs most,
-- each timed on blue and on green before cutover. While blue is still v1.2.1, the `-- on blue:`
-- form (the same question asked of content_v1 / downloads_v1) is the baseline; once v2 is live,
-- later deploys time the v2 form on both files, so a migration that drops one of these indexes
-- is refused as a new full scan.

-- benchmark: content_by_url
-- "is this URL already in the library?" on every paste: content_url index.
SELECT id, title FROM content WHERE original_url = 'https://www.youtube.com/watch?v=bluegreen';
-- on blue:
SELECT id, title FROM content_v1 WHERE url = 'https://www.youtube.com/watch?v=bluegreen';

-- benchmark: content_by_platform_id
-- de-duplication by the platform's own id: content_platform index (platform_id, platform_content_id).
SELECT c.id FROM content AS c JOIN platforms AS p ON p.id = c.platform_id
WHERE p.name = 'youtube' AND c.platform_content_id = 'bluegreen';
-- on blue:
SELECT id FROM content_v1
WHERE lower(trim(platform)) = 'youtube' AND json_valid(metadata) AND json_extract(metadata, '$.id') = 'bluegreen';

-- benchmark: latest_content_page
-- the library's first page, newest first: content_created index.
SELECT id, title, author FROM content ORDER BY created_at DESC LIMIT 50;
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
-- one item's page: content, its metadata and its selected quality, all by primary key or index.
SELECT c.title, m.view_count, m.duration_seconds, q.quality_label
FROM content AS c
LEFT JOIN content_metadata AS m ON m.content_id = c.id
LEFT JOIN quality_options AS q ON q.content_id = c.id AND q.is_selected = 1
WHERE c.id = 42;
-- on blue:
SELECT title, json_extract(metadata, '$.view_count'), json_extract(metadata, '$.duration') FROM content_v1
WHERE id = 42 AND json_valid(metadata);
