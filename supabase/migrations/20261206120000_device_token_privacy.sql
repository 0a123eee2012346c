-- Device tokens, issue 23 finding 6.
--
-- 1. A user could learn that another user's token exists: inserting it (or
--    updating one's own row to it) directly failed on the unique key. Users now
--    register only through herald.register_device, which answers a known and a
--    new token alike; they keep reading and deleting their own rows.
-- 2. The audit of moves grew by a row per registration: two accounts passing a
--    token back and forth wrote a row each time. Now one row per token and
--    direction (from, to) counts the moves, and moves older than 90 days go
--    (herald.prune_device_token_moves, scheduled where pg_cron runs).

revoke insert, update on herald.device_tokens from authenticated;
drop policy "device_tokens: owner can insert" on herald.device_tokens;
drop policy "device_tokens: owner can update" on herald.device_tokens;

comment on table herald.device_tokens is
  'FCM registration tokens. Users read and delete their own and register through herald.register_device (never by insert or update: a unique-key error would tell them another user holds a token).';

-- One row per token and direction: the first and last move, how many, and how
-- many pending pushes they cancelled in all.
delete from herald.device_token_moves m
using herald.device_token_moves later
where later.token_sha256 = m.token_sha256
  and later.from_user_id is not distinct from m.from_user_id
  and later.to_user_id = m.to_user_id
  and later.id > m.id;
alter table herald.device_token_moves
  add column moves integer not null default 1 check (moves > 0),
  add column first_moved_at timestamptz not null default now();
update herald.device_token_moves set first_moved_at = moved_at;
alter table herald.device_token_moves
  add constraint device_token_moves_direction_key
  unique nulls not distinct (token_sha256, from_user_id, to_user_id);
create index device_token_moves_moved_at_idx on herald.device_token_moves (moved_at);

comment on table herald.device_token_moves is
  'Audit trail of device tokens registered by another user, one row per token and direction (moves counts them). Kept 90 days (herald.prune_device_token_moves). Service role only.';

create or replace function herald.register_device(p_token text, p_platform text)
returns herald.device_tokens
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  previous herald.device_tokens;
  cancelled integer;
  registered herald.device_tokens;
begin
  if caller is null or herald.is_service() then
    raise exception 'register_device needs a signed-in user' using errcode = '42501';
  end if;
  select * into previous from herald.device_tokens t where t.token = p_token for update;
  if found and previous.user_id <> caller then
    -- The previous owner's pending pushes must not reach the device's new holder.
    update herald.deliveries d
    set status = 'cancelled', last_error = 'the device was registered by another user',
      locked_until = null, updated_at = now()
    where d.device_token_id = previous.id and d.status = 'pending'
      and (d.locked_until is null or d.locked_until < now());
    get diagnostics cancelled = row_count;
    insert into herald.device_token_moves as m
      (token_sha256, from_user_id, to_user_id, platform, cancelled_deliveries)
    values (encode(extensions.digest(p_token, 'sha256'), 'hex'), previous.user_id, caller,
      p_platform, cancelled)
    on conflict (token_sha256, from_user_id, to_user_id) do update
      set moves = m.moves + 1,
          cancelled_deliveries = m.cancelled_deliveries + excluded.cancelled_deliveries,
          platform = excluded.platform,
          moved_at = now();
    delete from herald.device_tokens t where t.id = previous.id;
  end if;
  insert into herald.device_tokens as t (user_id, token, platform)
  values (caller, p_token, p_platform)
  on conflict (token) do update
    set user_id = excluded.user_id,
        platform = excluded.platform,
        last_seen_at = now(),
        disabled_at = null,
        disabled_reason = null
  returning t.* into registered;
  return registered;
end;
$$;

-- Deletes moves whose last one is older than the retention; answers how many.
create function herald.prune_device_token_moves(p_retention interval default '90 days')
returns integer
language sql
security definer
set search_path = ''
as $$
  with gone as (
    delete from herald.device_token_moves m where m.moved_at < now() - p_retention returning 1
  )
  select count(*)::integer from gone;
$$;

revoke execute on function herald.prune_device_token_moves(interval) from public;
grant execute on function herald.prune_device_token_moves(interval) to service_role;

do $schedule$
begin
  if to_regclass('cron.job') is null then
    raise notice 'pg_cron is not installed: herald.prune_device_token_moves is not scheduled';
    return;
  end if;
  perform cron.schedule('herald-prune-device-token-moves', '29 3 * * *',
    'select herald.prune_device_token_moves()');
end;
$schedule$;
