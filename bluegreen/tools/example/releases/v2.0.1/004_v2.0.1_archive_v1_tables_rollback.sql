-- bluegreen: carries content_v1_backup, downloads_v1_backup, application_settings
-- Rollback for 004, on blue (2.0.0) during a revert of 2.0.1: a backup row changed on green is
-- copied back into content_v1 / downloads_v1 by rowid, or deleted there when green deleted it;
-- a setting the application changed on green comes back the same way, except the two 004 set
-- (old_schema_cleanup_date, data_version), which keep blue's 2.0.0 values. Idempotent.
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
WHERE (rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings')
       OR setting_key IN (SELECT setting_key FROM source.application_settings
                          WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes
                                          WHERE table_name = 'application_settings')))
  AND setting_key NOT IN ('old_schema_cleanup_date', 'data_version');
INSERT INTO main.application_settings (rowid, setting_key, setting_value, description, value_type, updated_at)
SELECT rowid, setting_key, setting_value, description, value_type, updated_at FROM source.application_settings
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings')
  AND setting_key NOT IN ('old_schema_cleanup_date', 'data_version');
