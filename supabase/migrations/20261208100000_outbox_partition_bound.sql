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
  tries integer := 0;
begin
  -- Every lock at once, or none: waiting while holding one could deadlock with
  -- the running release (the write-back takes deliveries before notifications,
  -- enqueue the other way round). Each try waits at most 100 ms, under the
  -- deadlock detector's second, so the running release's statements wait at
  -- most that long for any one try.
  perform set_config('lock_timeout', '100ms', true);
  loop
    begin
      lock table herald.notifications, herald.deliveries, herald.delivery_attempts in access exclusive mode;
      exit;
    exception when lock_not_available then
      tries := tries + 1;
      if tries >= 600 then
        raise;
      end if;
      perform pg_sleep(0.02 + random() * 0.08);
    end;
  end loop;
  perform set_config('lock_timeout', '5s', true);
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
