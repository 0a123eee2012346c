-- Issue 27, step 1 of 3: the outbox becomes partitioned by day without a long
-- lock, while the previous release keeps running (expand/contract).
--
-- The existing tables become each one "legacy" partition holding everything
-- created before herald.partitioned_since(); days from then on get a partition
-- each. Attaching a table as a partition scans it under an exclusive lock
-- unless a validated CHECK already proves its bounds, so:
--   1. this file adds the bounds NOT VALID (an exclusive lock for an instant);
--   2. the next validates them (a scan that lets reads and writes go on);
--   3. the third attaches, renames and swaps (instants again).
-- Each migration file is one transaction of `supabase db push`, which is why
-- these are three files: a lock is held until its transaction ends.
--
-- The bound is a UTC midnight at least 24 hours away, so the previous
-- release's inserts (created_at = now()) keep meeting it until step 3 has run.
set lock_timeout = '5s';

do $$
declare
  since timestamptz :=
    (date_trunc('day', now() at time zone 'UTC') + interval '2 days') at time zone 'UTC';
begin
  execute format($f$
    create function herald.partitioned_since() returns timestamptz
    language sql immutable parallel safe set search_path = ''
    as $b$ select %L::timestamptz $b$
  $f$, since);
  execute format('alter table herald.notifications add constraint notifications_legacy_bound'
    ' check (created_at < %L) not valid', since);
  execute format('alter table herald.deliveries add constraint deliveries_legacy_bound'
    ' check (created_at < %L) not valid', since);
  execute format('alter table herald.delivery_attempts add constraint delivery_attempts_legacy_bound'
    ' check (at < %L) not valid', since);
end;
$$;

comment on function herald.partitioned_since() is
  'Where the outbox''s day partitions begin: rows created earlier are in the *_legacy partitions.';
