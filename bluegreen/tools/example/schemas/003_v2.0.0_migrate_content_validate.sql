-- Validates 003 on green: every v1 row arrived, with its id, url and verbatim values, every key of
-- every v1 metadata / download_info object has its home, and the v2 rows hang together. Returns
-- (check_name, expected, actual, status). content_v1/downloads_v1 are still in the file (and kept
-- current by replay), so each check compares them with v2 directly. The plan's three checks come
-- first under the plan's names; mismatch checks count rows with NOT EXISTS anti-joins or IS NOT
-- comparisons: expected is 0.
WITH checks (check_name, expected, actual) AS (
  -- the plan's: as many content rows as content_v1 rows
  SELECT 'content_count', (SELECT count(*) FROM content_v1), (SELECT count(*) FROM content)
  UNION ALL
  -- the plan's: the v1 metadata was extracted; here, stronger: every key of every v1 object has
  -- one home (a typed content column or a content_metadata row), counted key by key
  SELECT 'metadata_extracted',
         (SELECT sum((SELECT count(*) FROM json_each(p.m)) + (SELECT count(*) FROM json_each(p.di)))
          FROM v1_content_parsed p),
         (SELECT sum((c.description IS NOT NULL) + (c.content_type IS NOT NULL) + (c.author_id IS NOT NULL)
                     + (c.duration_seconds IS NOT NULL) + (c.view_count IS NOT NULL) + (c.like_count IS NOT NULL)
                     + (c.comment_count IS NOT NULL) + (c.published_at IS NOT NULL) + (c.status IS NOT NULL)
                     + (c.file_size_bytes IS NOT NULL) + (c.local_file_path IS NOT NULL) + (c.thumbnail_path IS NOT NULL))
          FROM content c WHERE c.id IN (SELECT id FROM content_v1))
       + (SELECT count(*) FROM content_metadata WHERE metadata_type <> 'raw')
  UNION ALL
  -- the plan's: every content names a platform that exists
  SELECT 'platform_relationships', 0,
         (SELECT count(*) FROM content c WHERE NOT EXISTS (SELECT 1 FROM platforms p WHERE p.id = c.platform_id))
  UNION ALL
  SELECT 'downloads rows: downloads_v1 = downloads',
         (SELECT count(*) FROM downloads_v1), (SELECT count(*) FROM downloads)
  UNION ALL
  SELECT 'content_v1 ids missing from content', 0,
         (SELECT count(*) FROM content_v1 v WHERE NOT EXISTS (SELECT 1 FROM content c WHERE c.id = v.id))
  UNION ALL
  SELECT 'content ids not in content_v1', 0,
         (SELECT count(*) FROM content c WHERE NOT EXISTS (SELECT 1 FROM content_v1 v WHERE v.id = c.id))
  UNION ALL
  SELECT 'downloads_v1 ids missing from downloads', 0,
         (SELECT count(*) FROM downloads_v1 v WHERE NOT EXISTS (SELECT 1 FROM downloads d WHERE d.id = v.id))
  UNION ALL
  SELECT 'downloads ids not in downloads_v1', 0,
         (SELECT count(*) FROM downloads d WHERE NOT EXISTS (SELECT 1 FROM downloads_v1 v WHERE v.id = d.id))
  UNION ALL
  SELECT 'urls preserved', 0,
         (SELECT count(*) FROM content_v1 v JOIN content c ON c.id = v.id WHERE c.original_url IS NOT v.url)
  UNION ALL
  SELECT 'title, author, platform, created_at preserved', 0,
         (SELECT count(*) FROM content_v1 v JOIN content c ON c.id = v.id
          WHERE c.title IS NOT v.title OR c.author_name IS NOT v.author OR c.v1_platform IS NOT v.platform
             OR c.created_at IS NOT v.created_at)
  UNION ALL
  -- per key: the row's value is the v1 value (its text, for a number kept as written)
  SELECT 'metadata key values preserved', 0,
         (SELECT count(*) FROM content_metadata x JOIN v1_content_parsed p ON p.id = x.content_id
          WHERE x.metadata_type <> 'raw'
            AND x.metadata_value IS NOT (
              SELECT CASE WHEN x.data_type = 'json' AND j.type IN ('integer', 'real')
                          THEN (CASE WHEN x.metadata_type = 'download_info' THEN p.di ELSE p.m END) -> j.fullkey
                          WHEN j.type IN ('array', 'object') THEN j.value ELSE j.atom END
              FROM json_each(CASE WHEN x.metadata_type = 'download_info' THEN p.di ELSE p.m END) j
              WHERE j.key = CASE WHEN x.metadata_type IN ('platform_specific', 'video_specs')
                                 THEN CASE x.metadata_key WHEN 'youtube_video_id' THEN 'id' WHEN 'tiktok_video_id' THEN 'aweme_id'
                                   WHEN 'instagram_media_id' THEN 'pk' WHEN 'resolution_width' THEN 'width'
                                   WHEN 'resolution_height' THEN 'height' WHEN 'video_codec' THEN 'vcodec'
                                   WHEN 'audio_codec' THEN 'acodec' ELSE x.metadata_key END
                                 ELSE x.metadata_key END))
  UNION ALL
  -- NULL stays NULL, a JSON object with keys is split, anything else is one raw row, verbatim
  SELECT 'metadata and download_info kept verbatim when not an object with keys', 0,
         (SELECT count(*) FROM v1_content_parsed p
          WHERE (SELECT r.metadata_value FROM content_metadata r
                 WHERE r.content_id = p.id AND r.metadata_type = 'raw' AND r.metadata_key = 'metadata')
                IS NOT CASE WHEN p.m IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(p.m)) THEN p.metadata END
             OR (SELECT r.metadata_value FROM content_metadata r
                 WHERE r.content_id = p.id AND r.metadata_type = 'raw' AND r.metadata_key = 'download_info')
                IS NOT CASE WHEN p.di IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(p.di)) THEN p.download_info END)
  UNION ALL
  SELECT 'orphaned v2 child rows', 0,
         (SELECT count(*) FROM content_metadata m WHERE NOT EXISTS (SELECT 1 FROM content c WHERE c.id = m.content_id))
       + (SELECT count(*) FROM download_errors e WHERE NOT EXISTS (SELECT 1 FROM downloads d WHERE d.id = e.download_id))
       + (SELECT count(*) FROM downloads d
          WHERE d.content_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM content c WHERE c.id = d.content_id))
  UNION ALL
  -- a v1 orphan keeps its dangling content_id in orphan_content_id
  SELECT 'download content links preserved', 0,
         (SELECT count(*) FROM downloads_v1 v JOIN downloads d ON d.id = v.id
          WHERE coalesce(d.content_id, d.orphan_content_id) IS NOT v.content_id)
  UNION ALL
  SELECT 'download columns preserved', 0,
         (SELECT count(*) FROM downloads_v1 v JOIN downloads d ON d.id = v.id
          WHERE d.v1_status IS NOT v.status OR d.progress IS NOT v.progress OR d.file_path IS NOT v.file_path
             OR d.started_at IS NOT v.started_at OR d.finished_at IS NOT v.finished_at)
  UNION ALL
  SELECT 'error messages preserved', 0,
         (SELECT count(*) FROM downloads_v1 v
          WHERE v.error_message IS NOT (SELECT e.error_message FROM download_errors e WHERE e.id = v.id))
  UNION ALL
  SELECT 'migration_status steps completed', 5,
         (SELECT count(*) FROM migration_status WHERE migration_id LIKE '2.0.0:%' AND status = 'completed')
  UNION ALL
  -- the sync script keeps these counts current while green catches up; a row lost from any v2
  -- table after the load shows here
  SELECT 'migration_status records_processed = rows in each v2 table', 0,
         (SELECT count(*) FROM migration_status
          WHERE migration_id LIKE '2.0.0:%'
            AND records_processed IS NOT CASE migration_id
              WHEN '2.0.0:platforms' THEN (SELECT count(*) FROM platforms)
              WHEN '2.0.0:content' THEN (SELECT count(*) FROM content)
              WHEN '2.0.0:content_metadata' THEN (SELECT count(*) FROM content_metadata)
              WHEN '2.0.0:downloads' THEN (SELECT count(*) FROM downloads)
              WHEN '2.0.0:download_errors' THEN (SELECT count(*) FROM download_errors) END)
  UNION ALL
  SELECT 'migration_status total_records = v1 rows', 0,
         (SELECT count(*) FROM migration_status
          WHERE migration_id LIKE '2.0.0:%' AND migration_id <> '2.0.0:platforms'
            AND total_records IS NOT CASE WHEN migration_id IN ('2.0.0:downloads', '2.0.0:download_errors')
                                          THEN (SELECT count(*) FROM downloads_v1)
                                          ELSE (SELECT count(*) FROM content_v1) END)
  UNION ALL
  -- the audit trail starts at cutover: a migrated row was last updated when it was created
  SELECT 'migrated rows: updated_at = created_at, no history yet', 0,
         (SELECT count(*) FROM content c JOIN content_v1 v ON v.id = c.id WHERE c.updated_at IS NOT c.created_at)
       + (SELECT count(*) FROM content_history)
)
SELECT check_name, expected, actual, CASE WHEN actual = expected THEN 'PASS' ELSE 'FAIL' END AS status
FROM checks;
