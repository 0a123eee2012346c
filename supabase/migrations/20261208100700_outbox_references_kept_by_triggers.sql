-- The lean write path, second part: a delivery's references to its user,
-- device token and webhook endpoint are kept by triggers on those tables, not
-- by foreign keys.
--
-- A foreign key checks every inserted row: an executor started and ended per
-- row, 35-40 % of Postgres's time in a 100,000-subscriber fan-out (perf).
-- enqueue only writes ids it has just read from those tables, so the check
-- never refused anything; what the keys did that matters is ON DELETE SET
-- NULL, which these triggers do per statement instead: deleting a user, a
-- token or an endpoint clears it from the deliveries that name it, through
-- each day's index. A delete racing an enqueue can leave a dangling id; the
-- dispatcher treats a missing token as the key's NULL did (the address in
-- `target` is sent to) and a missing endpoint as disabled.

-- Also per row of a fan-out:
-- - a delivery's id is a UUIDv7, as a notification's is: each day's primary
--   key grows at its right edge instead of taking every insert at a random
--   leaf of a large index;
-- - herald.can_notify (the default rule) has no search_path of its own, so it
--   is inlined instead of run as a function per recipient. Its body names
--   nothing a search_path could change; a replacement may set its own.

-- Locks for a migration that the running release must not deadlock with:
-- all of them at once, each try waiting at most 100 ms, up to a minute.
create function herald.lock_all(p_locks text[]) returns void
language plpgsql
set search_path = ''
as $$
declare
  tries integer := 0;
  previous text := current_setting('lock_timeout');
  one text;
begin
  perform set_config('lock_timeout', '100ms', true);
  loop
    begin
      foreach one in array p_locks loop
        execute one;
      end loop;
      exit;
    exception when lock_not_available then
      tries := tries + 1;
      if tries >= 600 then
        raise;
      end if;
      perform pg_sleep(0.02 + random() * 0.08);
    end;
  end loop;
  perform set_config('lock_timeout', previous, true);
end;
$$;
revoke all on function herald.lock_all(text[]) from public;
comment on function herald.lock_all(text[]) is
  'Takes the given LOCK statements together in the caller''s transaction, retrying while any is held: a migration''s locks, without deadlocking the running release.';

-- Dropping a key drops its triggers on the referenced tables, which takes an
-- exclusive lock on each: taken up front with the rest, for this file's instant.
select herald.lock_all(array[
  'lock table herald.deliveries, auth.users, herald.device_tokens, herald.webhook_endpoints
     in access exclusive mode']);

alter table herald.deliveries drop constraint deliveries_recipient_id_fkey;
alter table herald.deliveries drop constraint deliveries_device_token_id_fkey;
alter table herald.deliveries drop constraint deliveries_webhook_endpoint_id_fkey;

create function herald.clear_delivery_references() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_table_name = 'users' then
    update herald.deliveries set recipient_id = null
    where recipient_id = any (array(select o.id from old_rows o));
  elsif tg_table_name = 'device_tokens' then
    update herald.deliveries set device_token_id = null
    where device_token_id = any (array(select o.id from old_rows o));
  else
    update herald.deliveries set webhook_endpoint_id = null
    where webhook_endpoint_id = any (array(select o.id from old_rows o));
  end if;
  return null;
end;
$$;
revoke all on function herald.clear_delivery_references() from public;

create trigger herald_clear_delivery_references after delete on auth.users
  referencing old table as old_rows
  for each statement execute function herald.clear_delivery_references();
create trigger clear_delivery_references after delete on herald.device_tokens
  referencing old table as old_rows
  for each statement execute function herald.clear_delivery_references();
create trigger clear_delivery_references after delete on herald.webhook_endpoints
  referencing old table as old_rows
  for each statement execute function herald.clear_delivery_references();

alter table herald.deliveries alter column id set default herald.uuid_v7();
alter function herald.can_notify(uuid, uuid) reset search_path;
