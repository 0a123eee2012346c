-- Issue 27, step 3 of 3: notifications, deliveries and delivery_attempts
-- become partitioned by UTC day (created_at; attempts by at). Each existing
-- table is attached whole, as the partition "<table>_legacy" for everything
-- before herald.partitioned_since(): no row is copied, and the exclusive
-- locks below last as long as catalog changes do (the bounds were proved by
-- the two previous files). The previous release keeps running: the tables'
-- names and columns are unchanged.
--
-- What this gives up, and why (docs/DESIGN.md, "The outbox at age"):
--   * No key unique across partitions: a partitioned table's unique key must
--     hold the partition key. Each partition keeps `id` as its primary key;
--     ids are generated, never supplied.
--   * No foreign keys deliveries → notifications or attempts → deliveries:
--     a day's partitions are dropped together by herald.maintain_outbox(),
--     and a key referring to a partitioned table would make every drop scan
--     the referring table.
--   * The foreign keys to users, device tokens and webhook endpoints come
--     back in the next file, on the partitioned tables: attaching the legacy
--     partitions' keys swaps their triggers on auth.users, device_tokens and
--     webhook_endpoints, which takes exclusive locks on those; a transaction
--     of its own keeps that to an instant.
set lock_timeout = '5s';

do $$
declare
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
      lock table herald.dead_letters, herald.my_delivery_targets, herald.notifications,
        herald.deliveries, herald.delivery_attempts, herald.delivery_status_counts in access exclusive mode;
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
end;
$$;

-- What refers to the tables by identity rather than by name.
drop view herald.dead_letters;
drop view herald.my_delivery_targets;
drop policy "delivery_attempts: whoever sees the delivery can select" on herald.delivery_attempts;
alter table herald.deliveries drop constraint deliveries_notification_id_fkey;
alter table herald.delivery_attempts drop constraint delivery_attempts_delivery_id_fkey;
drop trigger deliveries_counted_insert on herald.deliveries;
drop trigger deliveries_counted_update on herald.deliveries;
drop trigger deliveries_counted_delete on herald.deliveries;

-- The attempt log's ids came from an identity column, which a partition of a
-- table without one cannot keep: a plain sequence, continuing, replaces it.
do $$
declare
  last_id bigint := (select max(id) from herald.delivery_attempts);
begin
  alter table herald.delivery_attempts alter column id drop identity;
  create sequence herald.delivery_attempts_id_seq as bigint;
  if last_id is not null then
    perform setval('herald.delivery_attempts_id_seq', last_id);
  end if;
end;
$$;

-- The old tables become the legacy partitions, their indexes renamed alike.
do $$
declare
  t text;
  i record;
begin
  foreach t in array array['notifications', 'deliveries', 'delivery_attempts'] loop
    execute format('alter table herald.%I rename to %I', t, t || '_legacy');
    for i in select indexname from pg_indexes
             where schemaname = 'herald' and tablename = t || '_legacy'
               and indexname like t || '\_%' loop
      execute format('alter index herald.%I rename to %I', i.indexname,
        t || '_legacy' || substr(i.indexname, length(t) + 1));
    end loop;
  end loop;
end;
$$;

create table herald.notifications (
  like herald.notifications_legacy including defaults including constraints
) partition by range (created_at);
alter table herald.notifications drop constraint notifications_legacy_bound;
create index notifications_sender_id_idx on herald.notifications (sender_id);

create table herald.deliveries (
  like herald.deliveries_legacy including defaults including constraints
) partition by range (created_at);
alter table herald.deliveries drop constraint deliveries_legacy_bound;
create index deliveries_dead_idx on herald.deliveries (updated_at desc) where status = 'dead';
create index deliveries_failed_idx on herald.deliveries (updated_at desc) where status = 'failed';
create index deliveries_device_token_id_idx on herald.deliveries (device_token_id)
  where device_token_id is not null;
create index deliveries_webhook_endpoint_id_idx on herald.deliveries (webhook_endpoint_id)
  where webhook_endpoint_id is not null;
create index deliveries_fan_out_due_idx on herald.deliveries (next_attempt_at)
  where status = 'pending' and lane = 2;
create index deliveries_urgent_due_idx on herald.deliveries (lane, next_attempt_at)
  where status = 'pending' and lane < 2;
create index deliveries_locked_by_idx on herald.deliveries (locked_by)
  where locked_by is not null and status = 'pending';
create index deliveries_notification_id_idx on herald.deliveries (notification_id);
create index deliveries_recipient_id_idx on herald.deliveries (recipient_id);

create table herald.delivery_attempts (
  like herald.delivery_attempts_legacy including defaults including constraints
) partition by range (at);
alter table herald.delivery_attempts drop constraint delivery_attempts_legacy_bound;
alter table herald.delivery_attempts
  alter column id set default nextval('herald.delivery_attempts_id_seq');
alter sequence herald.delivery_attempts_id_seq owned by herald.delivery_attempts.id;
create index delivery_attempts_delivery_id_idx on herald.delivery_attempts (delivery_id);

-- Matching indexes are attached, not built; the validated bounds spare the scan.
alter table herald.notifications attach partition herald.notifications_legacy
  for values from (minvalue) to (herald.partitioned_since());
alter table herald.deliveries attach partition herald.deliveries_legacy
  for values from (minvalue) to (herald.partitioned_since());
alter table herald.delivery_attempts attach partition herald.delivery_attempts_legacy
  for values from (minvalue) to (herald.partitioned_since());
alter table herald.notifications_legacy drop constraint notifications_legacy_bound;
alter table herald.deliveries_legacy drop constraint deliveries_legacy_bound;
alter table herald.delivery_attempts_legacy drop constraint delivery_attempts_legacy_bound;

comment on table herald.notifications is
  'Requested notifications, partitioned by UTC day of created_at. Senders and recipients read them; only herald.enqueue and the service role write.';
comment on table herald.deliveries is
  'The outbox, partitioned by UTC day of created_at (its notification''s). Recipients and senders read their deliveries; only the dispatcher (service role) writes.';
comment on column herald.deliveries.locked_by is
  'The dispatcher (herald.dispatchers.id) holding the current lease; null for function invocations.';
comment on table herald.delivery_attempts is
  'Attempt log, partitioned by UTC day of at. Readable by whoever may read the delivery; written by the dispatcher only.';

-- Who may read what: as before, on the partitioned tables. Partitions are
-- reached through them only (each has RLS on, no policy, no grant).
alter table herald.notifications enable row level security;
alter table herald.deliveries enable row level security;
alter table herald.delivery_attempts enable row level security;
create policy "notifications: sender or recipient can select" on herald.notifications
  for select to authenticated
  using (sender_id = (select auth.uid()) or herald.is_recipient(id));
create policy "deliveries: recipient or sender can select" on herald.deliveries
  for select to authenticated
  using (recipient_id = (select auth.uid()) or herald.is_sender(notification_id));
create policy "delivery_attempts: whoever sees the delivery can select" on herald.delivery_attempts
  for select to authenticated
  using (exists (select 1 from herald.deliveries d where d.id = delivery_attempts.delivery_id));
revoke all on herald.notifications, herald.deliveries, herald.delivery_attempts
  from public, anon, authenticated;
grant all on herald.notifications, herald.deliveries, herald.delivery_attempts to service_role;
grant select on herald.notifications, herald.delivery_attempts to authenticated;
grant select (id, notification_id, recipient_id, channel, device_token_id, platform, status,
  attempts, next_attempt_at, locked_until, last_error, provider_message_id, created_at,
  updated_at, sent_at, webhook_endpoint_id) on herald.deliveries to authenticated;
grant usage on sequence herald.delivery_attempts_id_seq to service_role;
revoke all on herald.notifications_legacy, herald.deliveries_legacy,
  herald.delivery_attempts_legacy from public, anon, authenticated, service_role;

create view herald.dead_letters with (security_invoker = true) as
  select d.id, d.notification_id, d.recipient_id, d.channel, d.target, d.attempts,
    d.last_error, d.created_at, d.updated_at as died_at
  from herald.deliveries d
  where d.status = 'dead';
comment on view herald.dead_letters is 'Deliveries that exhausted their attempts. Service role only.';
revoke all on herald.dead_letters from public, anon, authenticated;
grant select on herald.dead_letters to service_role;

create view herald.my_delivery_targets with (security_barrier = true) as
  select d.id as delivery_id, d.channel, d.target
  from herald.deliveries d
  where d.recipient_id = (select auth.uid());
comment on view herald.my_delivery_targets is
  'The caller''s own delivery addresses (deliveries.target is not readable by users).';
revoke all on herald.my_delivery_targets from public, anon;
grant select on herald.my_delivery_targets to authenticated, service_role;

-- The outbox gauge counts by day too, so dropping a day subtracts exactly
-- what it held without counting it. Rows before the partitions began are
-- day -infinity: the legacy partition's.
alter table herald.delivery_status_counts
  add column day date not null default '-infinity',
  drop constraint delivery_status_counts_pkey,
  add primary key (channel, lane, status, day, shard);
alter table herald.delivery_status_counts alter column day drop default;
comment on column herald.delivery_status_counts.day is
  'UTC day of the deliveries'' created_at (their partition); -infinity for the legacy partition.';

create function herald.outbox_day(p_created_at timestamptz) returns date
language sql immutable parallel safe set search_path = ''
as $$
  select case when p_created_at < herald.partitioned_since() then '-infinity'::date
    else (p_created_at at time zone 'UTC')::date end
$$;
comment on function herald.outbox_day(timestamptz) is
  'The day partition a created_at falls in (-infinity: the legacy partition).';

-- The insert branch also holds what the dropped foreign key to notifications
-- held, and more: a delivery's created_at is its notification's (see
-- 20261208100400).
create or replace function herald.deliveries_counted() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  cancelled boolean;
  orphan uuid;
begin
  -- Each branch names only the transition tables its event has.
  if tg_op = 'INSERT' then
    -- Per notification, not per row: a fan-out's 100,000 rows ask once.
    select d.notification_id into orphan
    from (select distinct r.notification_id, r.created_at from new_rows r) d
    where not exists (select 1 from herald.notifications n
                      where n.id = d.notification_id and n.created_at = d.created_at)
    limit 1;
    if found then
      raise exception 'a delivery must belong to a notification created at the same instant (notification %)',
        orphan using errcode = '23503';
    end if;
    insert into herald.delivery_status_counts as c (channel, lane, status, day, shard, n)
    select channel, lane, status, herald.outbox_day(created_at), pg_backend_pid(), count(*)
    from new_rows
    group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (channel, lane, status, day, shard) do update set n = c.n + excluded.n;
  elsif tg_op = 'DELETE' then
    insert into herald.delivery_status_counts as c (channel, lane, status, day, shard, n)
    select channel, lane, status, herald.outbox_day(created_at), pg_backend_pid(), -count(*)
    from old_rows
    group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (channel, lane, status, day, shard) do update set n = c.n + excluded.n;
  else
    -- One statement for the counts; the cancel join only when something was cancelled
    -- (a claim's update, which changes no status, costs one aggregate and nothing else).
    with delta as materialized (
      select channel, lane, status, day, sum(n) as n from (
        select channel, lane, status, herald.outbox_day(created_at) as day, count(*) as n
        from new_rows group by 1, 2, 3, 4
        union all
        select channel, lane, status, herald.outbox_day(created_at), -count(*)
        from old_rows group by 1, 2, 3, 4
      ) d group by 1, 2, 3, 4 having sum(n) <> 0
    ), counted as (
      insert into herald.delivery_status_counts as c (channel, lane, status, day, shard, n)
      select channel, lane, status, day, pg_backend_pid(), n from delta order by 1, 2, 3, 4
      on conflict (channel, lane, status, day, shard) do update set n = c.n + excluded.n
    )
    select coalesce(bool_or(status = 'cancelled' and n > 0), false) into cancelled from delta;
    if cancelled then
      insert into herald.metric_counters as c (metric, channel, label, shard, n)
      select 'deliveries', o.channel, 'cancelled', pg_backend_pid(), count(*)
      from old_rows o join new_rows n on n.id = o.id
      where n.status = 'cancelled' and o.status <> 'cancelled'
      group by o.channel order by o.channel
      on conflict (metric, instance, channel, label, shard) do update set n = c.n + excluded.n;
    end if;
  end if;
  return null;
end;
$$;

create trigger deliveries_counted_insert after insert on herald.deliveries
  referencing new table as new_rows for each statement execute function herald.deliveries_counted();
create trigger deliveries_counted_update after update on herald.deliveries
  referencing old table as old_rows new table as new_rows
  for each statement execute function herald.deliveries_counted();
create trigger deliveries_counted_delete after delete on herald.deliveries
  referencing old table as old_rows for each statement execute function herald.deliveries_counted();

create or replace function herald.fold_metric_shards() returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  folded integer := 0;
  moved integer;
begin
  if not pg_try_advisory_xact_lock(hashtext('herald.fold_metric_shards')) then
    return 0;
  end if;
  with gone as (
    delete from herald.metric_counters c
    where c.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = c.shard)
    returning metric, instance, channel, label, n
  )
  insert into herald.metric_counters as c (metric, instance, channel, label, shard, n)
  select metric, instance, channel, label, 0, sum(n) from gone group by 1, 2, 3, 4 order by 1, 2, 3, 4
  on conflict (metric, instance, channel, label, shard) do update set n = c.n + excluded.n;
  get diagnostics moved = row_count;
  folded := folded + moved;
  with gone as (
    delete from herald.metric_histograms h
    where h.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = h.shard)
    returning metric, instance, channel, bucket, n, sum
  )
  insert into herald.metric_histograms as h (metric, instance, channel, bucket, shard, n, sum)
  select metric, instance, channel, bucket, 0, sum(n), sum(sum) from gone
  group by 1, 2, 3, 4 order by 1, 2, 3, 4
  on conflict (metric, instance, channel, bucket, shard)
  do update set n = h.n + excluded.n, sum = h.sum + excluded.sum;
  get diagnostics moved = row_count;
  folded := folded + moved;
  with gone as (
    delete from herald.delivery_status_counts s
    where s.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = s.shard)
    returning channel, lane, status, day, n
  )
  insert into herald.delivery_status_counts as s (channel, lane, status, day, shard, n)
  select channel, lane, status, day, 0, sum(n) from gone group by 1, 2, 3, 4 order by 1, 2, 3, 4
  on conflict (channel, lane, status, day, shard) do update set n = s.n + excluded.n;
  get diagnostics moved = row_count;
  return folded + moved;
end;
$$;

-- How long the outbox is kept: notifications with their deliveries, and the
-- attempt log (shorter: it explains recent failures; the delivery row keeps
-- the last error).
alter table herald.retention drop constraint retention_name_check;
alter table herald.retention add constraint retention_name_check check (name in (
  'device_tokens', 'device_token_moves', 'hook_events', 'notifications', 'delivery_attempts'));
insert into herald.retention (name, keep) values
  ('notifications', interval '30 days'),
  ('delivery_attempts', interval '14 days');
comment on table herald.retention is
  'How long each kind of history is kept: notifications (with their deliveries), delivery_attempts, '
  'device_tokens (disabled ones), device_token_moves, hook_events. Change a row to change it; '
  'read by herald.maintain_outbox() and the herald.prune_* functions. '
  'Service role and the database owner only.';

-- Creates a table's partition for one UTC day: built apart, then attached,
-- which takes only SHARE UPDATE EXCLUSIVE on the partitioned table (writes go on).
create function herald.create_day_partition(p_table text, p_day date) returns text
language plpgsql set search_path = ''
as $$
declare
  name text := p_table || '_p' || to_char(p_day, 'YYYYMMDD');
begin
  if p_table not in ('notifications', 'deliveries', 'delivery_attempts') then
    raise exception 'not a partitioned outbox table: %', p_table using errcode = '22023';
  end if;
  if pg_catalog.to_regclass(format('herald.%I', name)) is not null then
    return null;
  end if;
  execute format('create table herald.%I (like herald.%I including defaults including constraints)',
    name, p_table);
  execute format('alter table herald.%I add primary key (id)', name);
  execute format('alter table herald.%I enable row level security', name);
  execute format('revoke all on herald.%I from public, anon, authenticated, service_role', name);
  execute format('alter table herald.%I attach partition herald.%I for values from (%L) to (%L)',
    p_table, name, p_day::timestamp at time zone 'UTC', (p_day + 1)::timestamp at time zone 'UTC');
  return name;
end;
$$;
revoke all on function herald.create_day_partition(text, date) from public, anon, authenticated, service_role;

-- Upkeep of the partitioned outbox, idempotent, hourly by pg_cron (or by
-- whoever calls it: the long-running dispatcher does, once an hour):
--   * partitions for today and the next 7 days, so a missed run or a week of
--     them never leaves an insert without a partition;
--   * days past retention dropped: a day of notifications and its
--     deliveries together, once none of those deliveries is still pending (a
--     send_at far ahead, a back-off): such a day is kept and reported, and
--     dropped by the first run after its last delivery ends;
--   * attempt-log days past their own retention.
-- A drop takes an exclusive lock on the partitioned table for as long as the
-- catalog change; lock_timeout bounds the wait, and a busy day is retried by
-- the next run. p_now stands in for the clock in tests.
create function herald.maintain_outbox(p_now timestamptz default now())
returns table (action text, partition_name text, note text)
language plpgsql security definer set search_path = ''
as $$
declare
  since constant date := (herald.partitioned_since() at time zone 'UTC')::date;
  today constant date := (p_now at time zone 'UTC')::date;
  outbox_before constant timestamptz := p_now - herald.retention_of('notifications');
  attempts_before constant timestamptz := p_now - herald.retention_of('delivery_attempts');
  t text;
  d date;
  made text;
  p record;
  pending bigint;
begin
  -- One run at a time: two would race to create the same partition.
  if not pg_try_advisory_xact_lock(hashtext('herald.maintain_outbox')) then
    return query select 'skipped'::text, null::text, 'another run is in progress'::text;
    return;
  end if;
  perform set_config('lock_timeout', '1s', true);
  for d in select generate_series(greatest(today, since), today + 7, interval '1 day')::date loop
    foreach t in array array['notifications', 'deliveries', 'delivery_attempts'] loop
      made := herald.create_day_partition(t, d);
      if made is not null then
        return query select 'created'::text, made, null::text;
      end if;
    end loop;
  end loop;

  -- Partitions past retention, oldest first; the legacy ones end where the days begin.
  for p in
    select c.relname::text as name, parent.relname::text as parent,
      case when c.relname::text like '%\_legacy' then '-infinity'::date
        else to_date(right(c.relname::text, 8), 'YYYYMMDD') end as day,
      case when c.relname::text like '%\_legacy' then herald.partitioned_since()
        else (to_date(right(c.relname::text, 8), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC'
      end as ends
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    join pg_catalog.pg_class parent on parent.oid = i.inhparent
    where parent.relnamespace = 'herald'::regnamespace
      and parent.relname in ('deliveries', 'delivery_attempts')
    order by 3, 2
  loop
    if p.parent = 'delivery_attempts' then
      continue when p.ends > attempts_before;
    else
      continue when p.ends > outbox_before;
      -- A pending delivery keeps its day (and its notification). Checked
      -- first without a lock, then again under the lock the drop takes.
      execute format($q$select (select count(*) from herald.%1$I where status = 'pending' and lane < 2)
        + (select count(*) from herald.%1$I where status = 'pending' and lane = 2)$q$, p.name)
        into pending;
      if pending > 0 then
        return query select 'kept'::text, p.name,
          format('%s deliveries not yet delivered, cancelled or dead', pending);
        continue;
      end if;
    end if;
    begin
      if p.parent = 'delivery_attempts' then
        lock table herald.delivery_attempts in access exclusive mode;
        execute format('drop table herald.%I', p.name);
        return query select 'dropped'::text, p.name, null::text;
      else
        lock table herald.notifications, herald.deliveries in access exclusive mode;
        execute format($q$select count(*) from herald.%I where status = 'pending'$q$, p.name)
          into pending;
        if pending > 0 then
          return query select 'kept'::text, p.name, 'a delivery was replayed meanwhile'::text;
          continue;
        end if;
        execute format('drop table herald.%I', p.name);
        delete from herald.delivery_status_counts s where s.day = p.day;
        return query select 'dropped'::text, p.name, null::text;
        execute format('drop table if exists herald.%I',
          'notifications' || substr(p.name, length('deliveries') + 1));
        return query select 'dropped'::text,
          'notifications' || substr(p.name, length('deliveries') + 1), null::text;
      end if;
    exception when lock_not_available then
      return query select 'busy'::text, p.name, 'locked by others past lock_timeout; next run'::text;
    end;
  end loop;
end;
$$;
revoke all on function herald.maintain_outbox(timestamptz) from public, anon, authenticated;
grant execute on function herald.maintain_outbox(timestamptz) to service_role;

-- The hourly upkeep joins pg_cron's jobs.
create or replace function herald.schedule_jobs()
returns table (job text, schedule text, scheduled boolean, note text)
language plpgsql set search_path = ''
as $$
declare
  upkeep constant text[][] := array[
    ['herald-prune-device-tokens', '17 3 * * *', 'select herald.prune_device_tokens()'],
    ['herald-prune-hook-events', '41 3 * * *', 'select herald.prune_hook_events()'],
    ['herald-prune-idempotency-keys', '23 * * * *', 'select herald.prune_idempotency_keys()'],
    ['herald-prune-device-token-moves', '29 3 * * *', 'select herald.prune_device_token_moves()'],
    ['herald-maintain-outbox', '7 * * * *', 'select herald.maintain_outbox()']
  ];
  dispatch_command constant text := $job$
    select net.http_post(
      url := herald.dispatch_url(
        (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_url')),
      headers := jsonb_build_object(
        'content-type', 'application/json',
        'authorization', 'Bearer ' ||
          (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_key')),
      body := '{}'::jsonb,
      timeout_milliseconds := 60000)
    where herald.work_is_due()
  $job$;
  missing text;
  found_secrets integer;
begin
  -- cron and vault may not exist where this is created or linted
  -- (plpgsql_check plans even a constant EXECUTE): their names go in by format().
  if pg_catalog.to_regclass('cron.job') is null then
    if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron') then
      missing := 'pg_cron is not available';
    else
      begin
        -- Named, as Supabase documents it: under search_path = '' an
        -- unnamed schema fails before pg_cron can give its own reason.
        create extension pg_cron with schema pg_catalog;
      exception when others then
        missing := 'pg_cron cannot be created here (' || sqlerrm || ')';
      end;
    end if;
  end if;
  if missing is not null then
    raise notice '%: no Herald job is scheduled; call herald.maintain_outbox() and the herald.prune_* functions from your own scheduler', missing;
    for i in 1 .. array_length(upkeep, 1) loop
      return query select upkeep[i][1], upkeep[i][2], false, missing;
    end loop;
    return query select 'herald-dispatch'::text, null::text, false, missing;
    return;
  end if;

  for i in 1 .. array_length(upkeep, 1) loop
    execute format('select %I.schedule($1, $2, $3)', 'cron')
      using upkeep[i][1], upkeep[i][2], upkeep[i][3];
    return query select upkeep[i][1], upkeep[i][2], true, null::text;
  end loop;

  if pg_catalog.to_regnamespace('net') is null then
    if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_net') then
      missing := 'pg_net is not installed';
    else
      begin
        create extension pg_net with schema extensions;
      exception when others then
        missing := 'pg_net cannot be created here (' || sqlerrm || ')';
      end;
    end if;
  end if;
  if missing is null and pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    missing := 'Vault is not installed';
  elsif missing is null then
    execute format($q$select count(distinct name)::integer from %I.decrypted_secrets
      where name in ('herald_dispatch_url', 'herald_dispatch_key')
        and coalesce(decrypted_secret, '') <> ''$q$, 'vault') into found_secrets;
    if found_secrets < 2 then
      missing := 'Vault lacks herald_dispatch_url or herald_dispatch_key: create both, then '
        || 'select * from herald.schedule_jobs()';
    end if;
  end if;
  if missing is not null then
    -- An old one would post to nowhere every 5 s.
    execute format($q$select %1$I.unschedule(jobid) from %1$I.job where jobname = 'herald-dispatch'$q$,
      'cron');
    raise notice 'the dispatch job is not scheduled: %', missing;
    return query select 'herald-dispatch'::text, null::text, false, missing;
    return;
  end if;
  -- Seconds schedules came with pg_cron 1.5.
  if (select string_to_array(split_part(extversion, '-', 1), '.')::int[] >= array[1, 5]
      from pg_catalog.pg_extension where extname = 'pg_cron') then
    execute format($q$select %I.schedule('herald-dispatch', '5 seconds', $1)$q$, 'cron')
      using dispatch_command;
    return query select 'herald-dispatch'::text, '5 seconds'::text, true, null::text;
  else
    execute format($q$select %I.schedule('herald-dispatch', '* * * * *', $1)$q$, 'cron')
      using dispatch_command;
    raise notice 'pg_cron before 1.5 has no seconds schedules: dispatch runs every minute';
    return query select 'herald-dispatch'::text, '* * * * *'::text, true,
      'pg_cron before 1.5 has no seconds schedules: every minute'::text;
  end if;
end;
$$;
revoke all on function herald.schedule_jobs() from public, anon, authenticated, service_role;

select * from herald.maintain_outbox();
select * from herald.schedule_jobs();
