-- How long Herald keeps each kind of history, in one table: an operator
-- changes a row, not a migration, and the next prune (pg_cron's daily
-- herald-prune-* jobs, or whoever calls herald.prune_*()) keeps that long.
--
--   update herald.retention set keep = interval '14 days' where name = 'hook_events';
--
-- The idempotency keys' 24 hours is not here: it is the API's replay window
-- (notify answers a repeat within it), not a retention choice.
create table herald.retention (
  name text primary key check (name in ('device_tokens', 'device_token_moves', 'hook_events')),
  keep interval not null check (keep between interval '1 hour' and interval '10 years'),
  updated_at timestamptz not null default now()
);

comment on table herald.retention is
  'How long each kind of history is kept: device_tokens (disabled ones), device_token_moves, '
  'hook_events. Change a row to change it; read by the herald.prune_* functions. '
  'Service role and the database owner only.';

-- RLS on, no policy: the API roles see nothing; the service role (which
-- bypasses RLS) and the owner manage it.
alter table herald.retention enable row level security;
revoke all on herald.retention from public, anon, authenticated;
grant select, update on herald.retention to service_role;

insert into herald.retention (name, keep) values
  ('device_tokens', interval '30 days'),
  ('device_token_moves', interval '90 days'),
  ('hook_events', interval '7 days');

create function herald.touch_retention() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

create trigger retention_touched before update on herald.retention
  for each row execute function herald.touch_retention();

-- The kept interval of one kind of history.
create function herald.retention_of(p_name text)
returns interval
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_keep interval;
begin
  select r.keep into v_keep from herald.retention r where r.name = p_name;
  if v_keep is null then
    raise exception 'no retention setting named %', p_name using errcode = 'P0002';
  end if;
  return v_keep;
end;
$$;

revoke execute on function herald.retention_of(text) from public;
grant execute on function herald.retention_of(text) to service_role;

-- The prune functions: without an argument, the setting. Otherwise unchanged.
create or replace function herald.prune_device_token_moves(p_retention interval default null)
returns integer
language sql security definer set search_path = ''
as $$
  with gone as (
    delete from herald.device_token_moves m
    where m.moved_at < now() - coalesce(p_retention, herald.retention_of('device_token_moves'))
    returning 1
  )
  select count(*)::integer from gone;
$$;

create or replace function herald.prune_device_tokens(p_retention interval default null)
returns table (disabled integer, deleted integer)
language plpgsql set search_path = ''
as $$
declare
  stale integer;
  pruned integer;
begin
  update herald.device_tokens t
  set disabled_at = now(), disabled_reason = 'STALE'
  where t.disabled_at is null and t.last_seen_at < now() - interval '270 days';
  get diagnostics stale = row_count;
  delete from herald.device_tokens t
  where t.disabled_at < now() - coalesce(p_retention, herald.retention_of('device_tokens'));
  get diagnostics pruned = row_count;
  return query select stale, pruned;
end;
$$;

create or replace function herald.prune_hook_events(p_keep interval default null)
returns integer
language plpgsql set search_path = ''
as $$
declare
  pruned integer;
begin
  delete from herald.hook_events e
  where e.received_at < now() - coalesce(p_keep, herald.retention_of('hook_events'));
  get diagnostics pruned = row_count;
  return pruned;
end;
$$;
