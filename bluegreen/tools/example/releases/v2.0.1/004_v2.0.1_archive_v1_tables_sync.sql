-- Sync for 004, on green after each replay batch: a row of content_v1 / downloads_v1 written on
-- blue (2.0.0) during the deploy is copied into its backup by rowid (the v2 application does not
-- write them; an operator's repair might). Idempotent: the current blue row, or none.
DELETE FROM main.content_v1_backup
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content_v1');
INSERT INTO main.content_v1_backup
SELECT * FROM source.content_v1
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'content_v1');
DELETE FROM main.downloads_v1_backup
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads_v1');
INSERT INTO main.downloads_v1_backup
SELECT * FROM source.downloads_v1
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'downloads_v1');

-- application_settings: 004 writes it, so this companion keeps it (it overrides derivation): the
-- application's changed rows come over by rowid, then 004's two backfills run again on them.
DELETE FROM main.application_settings
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings')
   OR setting_key IN (SELECT setting_key FROM source.application_settings
                      WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes
                                      WHERE table_name = 'application_settings'));
INSERT INTO main.application_settings (rowid, setting_key, setting_value, description, value_type, updated_at)
SELECT rowid, setting_key, setting_value, description, value_type, updated_at FROM source.application_settings
WHERE rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings');
UPDATE main.application_settings SET setting_value = date('now', '+30 days'), updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'old_schema_cleanup_date'
  AND rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings');
UPDATE main.application_settings SET setting_value = '2.0.1', updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'data_version'
  AND rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = 'application_settings');
