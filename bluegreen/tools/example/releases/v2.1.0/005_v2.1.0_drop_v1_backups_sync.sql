-- Sync for 005, on green after each replay batch. The backups it drops have no place in 2.1.0:
-- nothing writes them after 2.0.1 (the application writes the v2 tables), so there is nothing to
-- carry. A write to them on blue during the deploy would be lost: this refuses it instead (the
-- CHECK fails, the batch is not committed, blue stays active) so it is looked at, not dropped.
DROP TABLE IF EXISTS temp.bg005_unexpected_writes;
CREATE TEMP TABLE bg005_unexpected_writes (
  table_name TEXT CHECK (table_name IS NULL)  -- 'a write to a dropped v1 backup during the deploy'
);
INSERT INTO temp.bg005_unexpected_writes (table_name)
SELECT table_name FROM temp.bluegreen_changes
WHERE table_name IN ('content_v1_backup', 'downloads_v1_backup') LIMIT 1;
DROP TABLE temp.bg005_unexpected_writes;
