-- bluegreen: not-before SELECT setting_value FROM application_settings WHERE setting_key = 'old_schema_cleanup_date'
-- 005 (release 2.1.0): drop the v1 backups 2.0.1 kept. The line above is a gate: `plan`,
-- `prepare` and `deploy` refuse this migration (exit 3, NotYetDue) while today (UTC) is before
-- the date that query reads from the active file, or while it reads none (2.0.1 not deployed).
--
DROP TABLE downloads_v1_backup;
DROP TABLE content_v1_backup;

UPDATE application_settings SET setting_value = '2.1.0', updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'data_version';
UPDATE application_settings SET setting_value = NULL, updated_at = CURRENT_TIMESTAMP
WHERE setting_key = 'old_schema_cleanup_date';
