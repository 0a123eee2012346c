-- A dispatcher takes others over only if its own last beat, by the
-- database's clock, is recent (p_steady_within).
--
-- The client already waited to have beaten steadily for the silence it
-- judges by, but it decided when a beat started. A beat that hung through a
-- Postgres stall (SIGSTOP, a freeze: queries wait rather than fail) ran
-- after it with the database's clock past the stall, and every other
-- dispatcher, whose beats hung too, looked silent: they were taken over
-- while sending, and 13-16 % of the pushes in flight were sent twice (an
-- outside check, 10 s stall, 2 and 4 workers). A stall long enough to make a
-- peer look silent also makes the judge's own previous beat that old, and
-- now the judge sits that beat out.
--
-- The previous release's four-argument call gets the same rule, with half
-- its silence as the limit (3 s at its 2 s beats and 6 s silence).
create function herald.dispatcher_heartbeat(
  me uuid,
  me_instance text,
  take_over boolean,
  silent_after interval,
  steady_within interval,
  out dispatchers integer,
  out deliveries integer
)
language plpgsql
set search_path = ''
as $$
declare
  silent uuid[];
  previous timestamptz;
begin
  select d.seen_at into previous from herald.dispatchers d where d.id = me;
  insert into herald.dispatchers as d (id, instance) values (me, me_instance)
  on conflict (id) do update set seen_at = now();
  dispatchers := 0;
  deliveries := 0;
  if not take_over or previous is null or previous < now() - steady_within then
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

create or replace function herald.dispatcher_heartbeat(
  me uuid,
  me_instance text,
  take_over boolean,
  silent_after interval,
  out dispatchers integer,
  out deliveries integer
)
language sql
set search_path = ''
as $$
  select h.dispatchers, h.deliveries
  from herald.dispatcher_heartbeat(me, me_instance, take_over, silent_after, silent_after / 2) h;
$$;
revoke all on function herald.dispatcher_heartbeat(uuid, text, boolean, interval, interval)
  from public;
