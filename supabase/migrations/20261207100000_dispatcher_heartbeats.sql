-- A dispatcher SIGKILLed mid-round left its claimed rows to wait out the
-- lease (60 s) before anyone sent them. Long-running dispatchers now say they
-- are alive here every 2 s and stamp what they claim with their id; another
-- dispatcher that sees an id silent for 6 s makes its claimed rows due at once,
-- ahead of rows that came due after them
-- (herald.take_over_silent_dispatchers). Function invocations claim without
-- an id: their rows keep the lease.
create table herald.dispatchers (
  id uuid primary key,
  instance text not null default '',
  started_at timestamptz not null default now(),
  seen_at timestamptz not null default now()
);
comment on table herald.dispatchers is
  'Long-running dispatchers alive now: one row each, removed when it stops or is taken over.';

alter table herald.deliveries add column locked_by uuid;
comment on column herald.deliveries.locked_by is
  'The dispatcher (herald.dispatchers.id) holding the current lease; null for function invocations.';
-- Only rows in flight carry an id (the write-back clears it): a small index.
create index deliveries_locked_by_idx on herald.deliveries (locked_by)
  where locked_by is not null and status = 'pending';

alter table herald.dispatchers enable row level security;
revoke all on herald.dispatchers from public, anon, authenticated;
grant select on herald.dispatchers to service_role;

-- One heartbeat: `me` is alive. When `take_over` (the caller has itself been
-- beating without a gap for longer than `silent_after`, so a silence is not
-- the database's own outage), removes every other dispatcher silent for
-- `silent_after` and makes the rows it holds due now; the next claim logs
-- their attempts as `unknown` and the late write-back of a dispatcher that
-- was only slow is fenced out by the new lease; dispatchers waiting for work
-- are woken. Returns how many dispatchers
-- and deliveries were taken over.
create function herald.dispatcher_heartbeat(
  me uuid, me_instance text, take_over boolean, silent_after interval,
  out dispatchers integer, out deliveries integer
)
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
    and n.id = d.notification_id;
  get diagnostics deliveries = row_count;
  if deliveries > 0 then
    perform pg_notify('herald_outbox', '');
  end if;
end;
$$;
revoke all on function herald.dispatcher_heartbeat(uuid, text, boolean, interval)
  from public, anon, authenticated;
