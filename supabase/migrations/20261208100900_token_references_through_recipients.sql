-- The lean write path, fourth part, and a time zone check that read every zone.
--
-- 1. No index on deliveries.device_token_id. Each delivery row paid it three
--    times (the insert, the claim's and the write-back's non-HOT updates), at
--    random places in a large index: 3 µs a row of a 100,000-row fan-out here,
--    as much as the whole trigger. Its readers find a token's deliveries
--    through the token's user instead (deliveries_recipient_id_idx):
--    - clearing a deleted token from its deliveries (clear_delivery_references);
--    - cancelling the previous owner's pending pushes when a device is
--      registered by another user (register_device).
--    A push sent to a raw token (no recipient) keeps the id of a token deleted
--    later, which points nowhere: the dispatcher reads a missing token as it
--    read a cleared one (not disabled; the delivery's target is the token).
--    A deleted user's deliveries lose their token with their user, in one
--    update (the user's tokens are deleted with them).
--
-- 2. herald.is_time_zone, the check on every preferences row, listed
--    pg_timezone_names (reading every zone file on disk) per call: 30-75 ms of
--    Postgres CPU per PUT /notify/preferences, 11 minutes for 20,000 rows.
--    Now the zone is loaded by name (Postgres caches it per session): about
--    10 µs. Names with a digit still take the list: Postgres would also accept
--    a POSIX rule there ("UTC+5", "Nowhere/X0"), which is not a zone.

select herald.lock_all(array[
  'lock table herald.deliveries, herald.device_tokens in access exclusive mode']);

drop index herald.deliveries_device_token_id_idx;

create or replace function herald.clear_delivery_references() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_table_name = 'users' then
    update herald.deliveries set recipient_id = null, device_token_id = null
    where recipient_id = any (array(select o.id from old_rows o));
  elsif tg_table_name = 'device_tokens' then
    -- Through the recipient's index (there is none on device_token_id). A
    -- deleted user's tokens are left to the users branch, which clears both.
    update herald.deliveries d set device_token_id = null
    from (select distinct o.user_id, o.id from old_rows o
          where exists (select 1 from auth.users u where u.id = o.user_id)) o
    where d.recipient_id = o.user_id and d.device_token_id = o.id;
  else
    update herald.deliveries set webhook_endpoint_id = null
    where webhook_endpoint_id = any (array(select o.id from old_rows o));
  end if;
  return null;
end;
$$;

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
    -- The previous owner's pending pushes must not reach the device's new
    -- holder: found through the previous owner (deliveries_recipient_id_idx).
    update herald.deliveries d
    set status = 'cancelled', last_error = 'the device was registered by another user',
      locked_until = null, updated_at = now()
    where d.recipient_id = previous.user_id and d.device_token_id = previous.id
      and d.status = 'pending'
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

-- A zone Postgres knows by name: what pg_timezone_names lists, in any case.
create or replace function herald.is_time_zone(p_zone text) returns boolean
language plpgsql
stable
set search_path = ''
-- Restored when the function returns, whatever set_config set below.
set timezone = 'UTC'
as $$
begin
  if p_zone is null or length(p_zone) > 100
     or p_zone !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
    return false;
  end if;
  if p_zone ~ '[0-9]' then
    -- Etc/GMT+5 and a few more; a POSIX rule would pass set_config.
    return exists (select 1 from pg_catalog.pg_timezone_names where lower(name) = lower(p_zone));
  end if;
  -- Without a digit, only a zone file can: Postgres loads it (cached per session).
  perform pg_catalog.set_config('timezone', p_zone, true);
  return true;
exception when invalid_parameter_value then
  return false;
end;
$$;
