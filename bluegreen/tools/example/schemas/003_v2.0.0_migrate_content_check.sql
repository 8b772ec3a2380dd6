-- Data-integrity checks of the v2.0 schema, run by `bluegreen check` on the active file once 003
-- is applied. Each query returns the offending rows (none when the data is sound). They overlap
-- foreign_key_check on purpose: foreign keys are only enforced when a connection turns them on,
-- and these name the problem in the application's words.

-- check: data_integrity_monitor
-- the plan's monitor view (created by 003): one row per check it counts, shown when not 0.
SELECT check_name, issue_count FROM data_integrity_monitor WHERE issue_count > 0;

-- check: orphaned_metadata
-- content_metadata rows whose content is gone (written with foreign_keys off).
SELECT m.content_id, m.metadata_type, m.metadata_key FROM content_metadata AS m
WHERE NOT EXISTS (SELECT 1 FROM content AS c WHERE c.id = m.content_id);

-- check: missing_platform_references
-- content naming a platform id that platforms does not have.
SELECT c.id, c.platform_id, c.v1_platform FROM content AS c
WHERE NOT EXISTS (SELECT 1 FROM platforms AS p WHERE p.id = c.platform_id);

-- check: duplicate_content
-- the same item twice: one platform's own id (a platform_specific row), or one URL, on more than
-- one content row.
SELECT 'platform id' AS duplicated, metadata_key || ':' || metadata_value AS value, count(*) AS copies,
       group_concat(content_id) AS content_ids
FROM content_metadata WHERE metadata_type = 'platform_specific'
GROUP BY metadata_key, metadata_value HAVING count(*) > 1
UNION ALL
SELECT 'url', original_url, count(*), group_concat(id)
FROM content GROUP BY original_url HAVING count(*) > 1;

-- check: downloads_without_content
-- a download that points at no content and does not keep the dangling v1 id either.
SELECT d.id, d.status, d.file_path FROM downloads AS d
WHERE d.content_id IS NULL AND d.orphan_content_id IS NULL;

-- check: untyped_metadata
-- a content_metadata value that is not what its data_type says (an application wrote a text
-- into an 'integer' row): queries that compare it as a number would miss it.
SELECT content_id, metadata_type, metadata_key, data_type, typeof(metadata_value) AS stored FROM content_metadata
WHERE CASE data_type WHEN 'integer' THEN typeof(metadata_value) <> 'integer'
                     WHEN 'float' THEN typeof(metadata_value) NOT IN ('real', 'integer')
                     WHEN 'string' THEN typeof(metadata_value) <> 'text'
                     WHEN 'boolean' THEN metadata_value NOT IN (0, 1) OR typeof(metadata_value) <> 'integer'
                     WHEN 'null' THEN metadata_value IS NOT NULL
                     WHEN 'blob' THEN typeof(metadata_value) <> 'blob'
                     ELSE 0 END;
