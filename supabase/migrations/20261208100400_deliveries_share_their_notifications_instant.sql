-- Issue 27: a delivery's created_at is its notification's (enqueue inserts
-- both in one statement, so one now()). The claim and the write-back find a
-- delivery by (id, created_at) and its notification by (id, created_at),
-- which prunes each lookup to one day's partition instead of probing every
-- day's index. The foreign key deliveries → notifications is gone with the
-- partitioning; the insert trigger now holds both in its place: a delivery
-- whose notification does not exist at that instant is refused (23503), as
-- the key refused one whose notification did not exist.
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

comment on column herald.deliveries.created_at is
  'Its notification''s created_at (one now() in enqueue; the insert trigger holds it): the partition key, and how the claim and the write-back find the notification.';

-- A silent dispatcher's deliveries, made due again: its notification found by (id, created_at).
create or replace function herald.dispatcher_heartbeat(
  me uuid, me_instance text, take_over boolean, silent_after interval,
  out dispatchers integer, out deliveries integer)
language plpgsql set search_path = ''
as $$
declare
  silent uuid[];
begin
  insert into herald.dispatchers as d (id, instance) values (me, me_instance)
  on conflict (id) do update set seen_at = now();
  dispatchers := 0;
  deliveries := 0;
  if not take_over then
    return;
  end if;
  with gone as (
    delete from herald.dispatchers
    where id <> me and seen_at < now() - silent_after
    returning id
  )
  select array_agg(id) into silent from gone;
  if silent is null then
    return;
  end if;
  dispatchers := cardinality(silent);
  -- Due since they first were (at most now): ahead of a backlog that came due
  -- after them, as they were when the silent dispatcher claimed them.
  update herald.deliveries d
  set next_attempt_at = least(now(), greatest(d.created_at, n.send_at)), updated_at = now()
  from herald.notifications n
  where d.locked_by = any(silent) and d.status = 'pending' and d.locked_until > now()
    and n.id = d.notification_id and n.created_at = d.created_at;
  get diagnostics deliveries = row_count;
  if deliveries > 0 then
    perform pg_notify('herald_outbox', '');
  end if;
end;
$$;

-- Deleting a notification deletes its deliveries and their attempt log, as
-- the foreign keys' ON DELETE CASCADE did. Retention never deletes (it drops
-- whole days), so this costs nothing on the hot path.
create function herald.notifications_deleted() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  with gone as (
    delete from herald.deliveries d using old_rows o
    where d.notification_id = o.id and d.created_at = o.created_at
    returning d.id
  )
  delete from herald.delivery_attempts a using gone where a.delivery_id = gone.id;
  return null;
end;
$$;

create trigger notifications_deleted after delete on herald.notifications
  referencing old table as old_rows
  for each statement execute function herald.notifications_deleted();
