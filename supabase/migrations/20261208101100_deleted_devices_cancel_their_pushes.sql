-- A device token deleted (its user signed out on that device, a prune, a
-- cascade) or a user deleted: what still waits to be sent to them is
-- cancelled. Before, the delivery kept the address as its target and was
-- sent anyway, so a device its user had signed out of (perhaps now someone
-- else's) or a deleted account still received what had been queued, e.g. a
-- push scheduled for tomorrow. A delivery in flight (its lease still running)
-- is left to its result: the send may already have happened.
create or replace function herald.clear_delivery_references() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_table_name = 'users' then
    -- "Waiting": pending and not in flight (no lease, or one run out).
    update herald.deliveries d
    set recipient_id = null, device_token_id = null,
      status = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then 'cancelled' else d.status end,
      last_error = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then 'its recipient was deleted' else d.last_error end,
      updated_at = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then now() else d.updated_at end
    where d.recipient_id = any (array(select o.id from old_rows o));
  elsif tg_table_name = 'device_tokens' then
    -- Through the recipient's index (there is none on device_token_id). A
    -- deleted user's tokens are left to the users branch, which clears both.
    update herald.deliveries d
    set device_token_id = null,
      status = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then 'cancelled' else d.status end,
      last_error = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then 'its device token was deleted' else d.last_error end,
      updated_at = case when d.status = 'pending' and coalesce(d.locked_until < now(), true)
        then now() else d.updated_at end
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
