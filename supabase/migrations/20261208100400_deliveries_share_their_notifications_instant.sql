-- Issue 27: a delivery's created_at is its notification's (enqueue inserts
-- both in one statement, so one now()). The claim and the write-back find a
-- delivery by (id, created_at) and its notification by (id, created_at),
-- which prunes each lookup to one day's partition instead of probing every
-- day's index. The foreign key deliveries → notifications is gone with the
-- partitioning; the insert trigger (herald.deliveries_counted, as
-- 20261208100200 made it) holds both in its place: a delivery
-- whose notification does not exist at that instant is refused (23503), as
-- the key refused one whose notification did not exist.

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
