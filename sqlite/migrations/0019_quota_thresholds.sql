-- Alert thresholds per quota: percentages of the period's allowance,
-- comma-separated in ascending order; '' means the defaults (80,100).
ALTER TABLE quotas ADD COLUMN thresholds TEXT NOT NULL DEFAULT '';
