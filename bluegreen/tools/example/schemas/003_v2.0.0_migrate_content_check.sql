-- Data-integrity checks of the v2.0 schema, run by `bluegreen check` on the active file once 003
-- is applied. Each query returns the offending rows (none when the data is sound). They overlap
-- foreign_key_check on purpose: foreign keys are only enforced when a connection turns them on,
-- and these name the problem in the application's words.

-- check: orphaned_metadata
-- content_metadata rows whose content is gone (written with foreign_keys off).
SELECT m.content_id FROM content_metadata AS m
WHERE NOT EXISTS (SELECT 1 FROM content AS c WHERE c.id = m.content_id);

-- check: content_without_metadata
-- v2 keeps exactly one metadata row per content (NULL columns when v1 had none).
SELECT c.id, c.title FROM content AS c
WHERE NOT EXISTS (SELECT 1 FROM content_metadata AS m WHERE m.content_id = c.id);

-- check: missing_platform_references
-- content naming a platform id that platforms does not have.
SELECT c.id, c.platform_id, c.v1_platform FROM content AS c
WHERE NOT EXISTS (SELECT 1 FROM platforms AS p WHERE p.id = c.platform_id);

-- check: duplicate_content
-- the same item twice: one platform's own id, or one URL, on more than one content row.
SELECT 'platform id' AS duplicated, platform_id || ':' || platform_content_id AS value, count(*) AS copies,
       group_concat(id) AS content_ids
FROM content WHERE platform_content_id IS NOT NULL
GROUP BY platform_id, platform_content_id HAVING count(*) > 1
UNION ALL
SELECT 'url', original_url, count(*), group_concat(id)
FROM content GROUP BY original_url HAVING count(*) > 1;

-- check: downloads_without_content
-- a download that points at no content and does not keep the dangling v1 id either.
SELECT d.id, d.status, d.file_path FROM downloads AS d
WHERE d.content_id IS NULL AND d.orphan_content_id IS NULL;
