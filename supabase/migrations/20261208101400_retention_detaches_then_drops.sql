-- herald.maintain_outbox takes a day out of the outbox in one run and drops
-- its tables in later ones. Dropping a partition holds an access-exclusive
-- lock on its parent until the transaction ends, and a big day's files are
-- unlinked at commit, under that lock: a day of 666,000 deliveries held the
-- outbox for 255 ms (a 108 ms count of its pending rows that no index could
-- answer, then a 137 ms commit), and the dispatchers' claims queued behind
-- it. Now each run does one of three things with a retired day, oldest
-- state first, so no transaction both locks what traffic needs and unlinks
-- files:
-- 1. A detached notifications day still has its own foreign key to
--    auth.users (DETACH copies the inherited key and its triggers on
--    auth.users). Dropping the key drops those triggers, under an exclusive
--    lock on auth.users held to commit: a run that drops keys does nothing
--    else, so its commit is quick.
-- 2. Detached tables with no key left are dropped: only their own locks.
-- 3. Only when neither was needed: the days past retention are detached.
--    The parents are locked in the order traffic takes them (notifications,
--    deliveries, the attempt log), the first with a 100 ms lock_timeout and
--    the others NOWAIT, so the run never holds one parent while it waits
--    long for another; up to five tries 50-150 ms apart, each released when
--    it fails. Each day is detached in a block of its own: a day whose
--    partition is busy is answered busy without undoing the others. The
--    pending checks go through the due indexes.
-- Partitions are made ahead first, whatever else fails.
create or replace function herald.maintain_outbox(p_now timestamptz default now())
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
  keyed boolean;
  leftovers integer := 0;
  due text[] := '{}'::text[];
  due_days date[] := '{}'::date[];
  parents text[] := '{}'::text[];
  fk record;
  tries integer := 0;
  locked integer;
  done text[];
  done_names text[];
  notes text[];
begin
  -- One run at a time: two would race to create the same partition.
  if not pg_try_advisory_xact_lock(hashtext('herald.maintain_outbox')) then
    return query select 'skipped'::text, null::text, 'another run is in progress'::text;
    return;
  end if;

  -- Made ahead: attaching locks a parent only against schema changes, not traffic.
  perform set_config('lock_timeout', '1s', true);
  for d in select generate_series(greatest(today, since), today + 7, interval '1 day')::date loop
    foreach t in array array['notifications', 'deliveries', 'delivery_attempts'] loop
      made := herald.create_day_partition(t, d);
      if made is not null then
        return query select 'created'::text, made, null::text;
      end if;
    end loop;
  end loop;

  -- Days an earlier run detached: no query reaches them.
  perform set_config('lock_timeout', '100ms', true);
  keyed := exists (
    select 1 from pg_catalog.pg_class c join pg_catalog.pg_constraint k on k.conrelid = c.oid
    where c.relnamespace = 'herald'::regnamespace and c.relkind = 'r' and not c.relispartition
      and c.relname ~ '^(notifications|deliveries|delivery_attempts)_(p\d{8}|legacy)$'
      and k.contype = 'f');
  for p in
    select c.relname::text as name from pg_catalog.pg_class c
    where c.relnamespace = 'herald'::regnamespace and c.relkind = 'r' and not c.relispartition
      and c.relname ~ '^(notifications|deliveries|delivery_attempts)_(p\d{8}|legacy)$'
    order by 1
  loop
    leftovers := leftovers + 1;
    begin
      if keyed then
        for fk in
          select k.conname from pg_catalog.pg_constraint k
          where k.conrelid = format('herald.%I', p.name)::regclass and k.contype = 'f'
        loop
          execute format('alter table herald.%I drop constraint %I', p.name, fk.conname);
          return query select 'unkeyed'::text, p.name,
            format('its foreign key %s dropped; the table goes next run', fk.conname);
        end loop;
      else
        execute format('drop table herald.%I', p.name);
        -- A count a shard fold wrote back for the day after its detach.
        if p.name like 'deliveries\_%' then
          delete from herald.delivery_status_counts s
          where s.day = case when p.name like '%\_legacy' then '-infinity'::date
                          else to_date(right(p.name, 8), 'YYYYMMDD') end;
        end if;
        return query select 'dropped'::text, p.name, null::text;
      end if;
    exception when lock_not_available or deadlock_detected then
      return query select 'busy'::text, p.name, 'locked by others past lock_timeout; next run'::text;
    end;
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
      -- A pending delivery keeps its day (and its notification); checked
      -- again under the lock.
      pending := herald.pending_in_partition(p.name);
      if pending > 0 then
        return query select 'kept'::text, p.name,
          format('%s deliveries not yet delivered, cancelled or dead', pending);
        continue;
      end if;
    end if;
    if leftovers > 0 then
      return query select 'waiting'::text, p.name,
        'past retention; detached by a later run (this one cleared days detached before)'::text;
      continue;
    end if;
    due := due || p.name;
    due_days := due_days || p.day;
    parents := parents || case p.parent when 'delivery_attempts' then array['delivery_attempts']
      else array['notifications', 'deliveries'] end;
  end loop;
  if cardinality(due) = 0 then
    return;
  end if;

  loop
    -- What this try did, answered once it holds: a try that fails is undone.
    done := '{}'::text[];
    done_names := '{}'::text[];
    notes := '{}'::text[];
    begin
      -- In traffic's order; only the first may wait, briefly.
      perform set_config('lock_timeout', '100ms', true);
      locked := 0;
      foreach t in array array['notifications', 'deliveries', 'delivery_attempts'] loop
        continue when not t = any (parents);
        execute format('lock table herald.%I in access exclusive mode%s', t,
          case when locked = 0 then '' else ' nowait' end);
        locked := locked + 1;
      end loop;
      for i in 1 .. cardinality(due) loop
        begin
          if due[i] like 'delivery\_attempts\_%' then
            execute format('alter table herald.delivery_attempts detach partition herald.%I', due[i]);
            done := done || 'detached'::text;
            done_names := done_names || due[i];
            notes := notes || null::text;
            continue;
          end if;
          if herald.pending_in_partition(due[i]) > 0 then
            done := done || 'kept'::text;
            done_names := done_names || due[i];
            notes := notes || 'a delivery was replayed meanwhile'::text;
            continue;
          end if;
          execute format('alter table herald.deliveries detach partition herald.%I', due[i]);
          delete from herald.delivery_status_counts s where s.day = due_days[i];
          t := 'notifications' || substr(due[i], length('deliveries') + 1);
          if pg_catalog.to_regclass(format('herald.%I', t)) is not null then
            execute format('alter table herald.notifications detach partition herald.%I', t);
          end if;
          done := done || 'detached'::text;
          done_names := done_names || due[i];
          notes := notes || null::text;
          if pg_catalog.to_regclass(format('herald.%I', t)) is not null then
            done := done || 'detached'::text;
            done_names := done_names || t;
            notes := notes || null::text;
          end if;
        exception when lock_not_available or deadlock_detected then
          -- This day only: the others stand.
          done := done || 'busy'::text;
          done_names := done_names || due[i];
          notes := notes || 'locked by others past lock_timeout; next run'::text;
        end;
      end loop;
      exit;
    exception when lock_not_available or deadlock_detected then
      -- This try's locks are released with it; traffic resumes.
      tries := tries + 1;
      if tries >= 5 then
        return query select 'busy'::text, x, 'locked by others past lock_timeout; next run'::text
          from unnest(due) x;
        return;
      end if;
      perform pg_sleep(0.05 + random() * 0.1);
    end;
  end loop;
  return query select a, n, x from unnest(done, done_names, notes) u(a, n, x);
end;
$$;

-- How many deliveries of one partition are pending, by the due indexes (a
-- plain status = 'pending' matches neither partial index and scans the day).
create or replace function herald.pending_in_partition(p_partition text)
returns bigint
language plpgsql stable set search_path = ''
as $$
declare
  n bigint;
begin
  execute format($q$select (select count(*) from herald.%1$I where status = 'pending' and lane < 2)
    + (select count(*) from herald.%1$I where status = 'pending' and lane = 2)$q$, p_partition)
    into n;
  return n;
end;
$$;
revoke all on function herald.pending_in_partition(text) from public, anon, authenticated;

comment on function herald.maintain_outbox(timestamptz) is
  'The outbox''s upkeep, hourly: partitions made eight days ahead; days past retention detached '
  '(kept while a delivery in them is pending), then in later runs their foreign keys and tables '
  'dropped.';
