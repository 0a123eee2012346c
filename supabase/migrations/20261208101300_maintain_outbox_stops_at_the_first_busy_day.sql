-- herald.maintain_outbox stops dropping at the first day it cannot lock in
-- time. Every drop's access-exclusive lock is held until the run ends, and
-- it went on to wait a second for each further day a reader held: with six
-- days to drop beside a long reader, the attempt log was locked for 6.8 s
-- and notify's inline attempts took 1.5-2.4 s (an outside check). The days
-- not tried are answered busy too; the next run takes them.
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
  busy boolean := false;
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
    -- After one wait in vain, no more: each drop's lock is held to the end
    -- of the run, and traffic queues behind every wait.
    if busy then
      return query select 'busy'::text, p.name, 'not tried: another day was busy; next run'::text;
      continue;
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
      busy := true;
      return query select 'busy'::text, p.name, 'locked by others past lock_timeout; next run'::text;
    end;
  end loop;
end;
$$;
