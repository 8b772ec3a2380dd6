-- bluegreen: carries content_v1_backup, downloads_v1_backup, application_settings
-- Rollback for 004, on blue (2.0.0) during a revert of 2.0.1: a backup row changed on green is
-- copied back into content_v1 / downloads_v1 by rowid, or deleted there when green deleted it;
-- a setting the application changed on green comes back the same way, as it wrote it. 004's own
-- two backfills are not changes on green: blue keeps its 2.0.0 values of them unless the
-- application changed them after cutover. Idempotent.
DELETE FROM main.downloads_v1
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads_v1_backup');
DELETE FROM main.content_v1
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content_v1_backup');
INSERT INTO main.content_v1
SELECT * FROM source.content_v1_backup
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content_v1_backup');
INSERT INTO main.downloads_v1
SELECT * FROM source.downloads_v1_backup
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads_v1_backup');

DELETE FROM main.application_settings
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings')
       OR setting_key IN (SELECT setting_key FROM source.application_settings
                          WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes
                                          WHERE table_name = 'application_settings'));
INSERT INTO main.application_settings (rowid, setting_key, setting_value, description, value_type, updated_at)
SELECT rowid, setting_key, setting_value, description, value_type, updated_at FROM source.application_settings
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings');
