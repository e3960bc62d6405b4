-- Quota periods: day, week or month in the tenant's time zone, or a
-- billing month from anchor_day (1-31; 0 for the other periods).
ALTER TABLE quotas ADD COLUMN period TEXT NOT NULL DEFAULT 'day';
ALTER TABLE quotas ADD COLUMN anchor_day INTEGER NOT NULL DEFAULT 0;
