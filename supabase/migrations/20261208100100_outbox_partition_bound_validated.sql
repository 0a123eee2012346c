-- Issue 27, step 2 of 3: proves the legacy bounds (see the previous file).
-- VALIDATE CONSTRAINT scans each table under SHARE UPDATE EXCLUSIVE, which
-- reads and writes do not wait for.
alter table herald.notifications validate constraint notifications_legacy_bound;
alter table herald.deliveries validate constraint deliveries_legacy_bound;
alter table herald.delivery_attempts validate constraint delivery_attempts_legacy_bound;
