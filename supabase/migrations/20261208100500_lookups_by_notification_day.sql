-- Issue 27: lookups by notification id prune to the days it can be in.
-- A notification's id is a UUIDv7 of its created_at's millisecond (both
-- from one now()), and its deliveries share that created_at: so
-- created_at >= herald.notification_since(id) leaves out every earlier day's
-- partition, at plan time for a constant, at run time for a parameter. An id
-- that does not say (v4, made before) gives -infinity: every day is looked at.
create function herald.notification_since(p_id uuid) returns timestamptz
language sql immutable parallel safe set search_path = ''
as $$ select coalesce(date_trunc('milliseconds', herald.uuid_v7_time(p_id)), '-infinity') $$;

-- The RLS helpers, in PL/pgSQL now: their plans are cached per session,
-- where a SQL function (security definer, so never inlined) planned its
-- query over every partition on every call, per row a policy checked.
create or replace function herald.is_sender(p_notification_id uuid) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  return exists (
    select 1 from herald.notifications n
    where n.id = p_notification_id and n.created_at >= herald.notification_since(p_notification_id)
      and n.sender_id = (select auth.uid()));
end;
$$;

create or replace function herald.is_recipient(p_notification_id uuid) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  return exists (
    select 1 from herald.deliveries d
    where d.notification_id = p_notification_id
      and d.created_at >= herald.notification_since(p_notification_id)
      and d.recipient_id = (select auth.uid()));
end;
$$;

create or replace function herald.cancel_notification(p_notification_id uuid) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  cancelled integer;
  made timestamptz;
begin
  select n.created_at into made from herald.notifications n
  where n.id = p_notification_id
    and n.created_at >= herald.notification_since(p_notification_id)
    and (herald.is_service() or (n.sender_id is not null and n.sender_id = auth.uid()));
  if not found then
    raise exception 'no notification % sent by you', p_notification_id using errcode = 'P0002';
  end if;
  update herald.deliveries d
  set status = 'cancelled', last_error = 'cancelled by the sender', locked_until = null,
    updated_at = now()
  where d.notification_id = p_notification_id and d.created_at = made and d.status = 'pending'
    and (d.locked_until is null or d.locked_until < now());
  get diagnostics cancelled = row_count;
  return cancelled;
end;
$$;

create or replace function herald.replay_deliveries(
  p_statuses text[], p_delivery_ids uuid[] default null, p_notification_id uuid default null)
returns integer
language plpgsql set search_path = ''
as $$
declare
  replayed integer;
begin
  if p_statuses is null or cardinality(p_statuses) = 0
     or not p_statuses <@ array['dead', 'failed'] then
    raise exception 'only dead and failed deliveries can be replayed, got %', p_statuses
      using errcode = '22023';
  end if;
  update herald.deliveries d
  set status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = null,
      updated_at = now()
  where d.status = any (p_statuses)
    and (p_delivery_ids is null or d.id = any (p_delivery_ids))
    and (p_notification_id is null or (d.notification_id = p_notification_id
         and d.created_at >= herald.notification_since(p_notification_id)));
  get diagnostics replayed = row_count;
  if replayed > 0 then
    perform pg_notify('herald_outbox', '');
  end if;
  return replayed;
end;
$$;

-- The attempt log's policy asked "is the delivery visible?" through the
-- deliveries' own policy: planned for every attempt-log day over every
-- outbox day, a status read carried a plan of some 1,500 nodes (~400 ms
-- per read with 38 days, against 7 ms without the attempt log). One cached
-- function call per row now: visible when the caller is the delivery's
-- recipient or its notification's sender, as the deliveries policy says. An
-- attempt is never older than its delivery, which prunes later days.
create function herald.can_see_delivery(p_delivery_id uuid, p_at timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  return exists (
    select 1 from herald.deliveries d
    where d.id = p_delivery_id and d.created_at <= p_at
      and (d.recipient_id = (select auth.uid()) or herald.is_sender(d.notification_id)));
end;
$$;
revoke execute on function herald.can_see_delivery(uuid, timestamptz) from public, anon;
grant execute on function herald.can_see_delivery(uuid, timestamptz) to authenticated;

drop policy "delivery_attempts: whoever sees the delivery can select" on herald.delivery_attempts;
create policy "delivery_attempts: whoever sees the delivery can select" on herald.delivery_attempts
  for select to authenticated
  using (herald.can_see_delivery(delivery_id, at));

-- The small immutable helpers the hot statements call are inlined by the
-- planner only without a SET clause (a function with one is always called,
-- and planned, as itself: 0.09 ms per notify for notification_since alone,
-- bench:notify with HERALD_BENCH_STATEMENTS=1). They are not security
-- definer, call only built-ins and schema-qualified Herald functions, and
-- run with the caller's rights, so a search_path of the caller's gains nothing.
alter function herald.uuid_v7_time(uuid) reset search_path;
alter function herald.notification_since(uuid) reset search_path;
alter function herald.partitioned_since() reset search_path;
alter function herald.outbox_day(timestamptz) reset search_path;
