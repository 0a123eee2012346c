-- Who may notify whom. Projects replace this function to fit their product
-- (friends, team members, …). The default: a user may notify only themself; a
-- service (sender null) may notify anyone.
create function herald.can_notify(p_sender uuid, p_recipient uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select p_sender is null or p_sender = p_recipient
$$;

grant execute on function herald.can_notify(uuid, uuid) to authenticated, service_role;

-- Creates a notification and its deliveries — one per live device token of
-- each recipient — in one statement, and wakes listening dispatchers.
-- The sender is the signed-in user (auth.uid()) or, for the service role,
-- nobody. Raises insufficient_privilege if can_notify refuses a recipient.
create function herald.enqueue(
  p_recipients uuid[],
  p_content jsonb,
  p_request_id text default null
)
returns table (notification_id uuid, deliveries integer)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  caller_role text := auth.role();
  sender uuid := case when auth.role() = 'service_role' then null else auth.uid() end;
  denied uuid;
begin
  if caller_role is distinct from 'service_role' and sender is null then
    raise exception 'enqueue needs a signed-in user or the service role' using errcode = '42501';
  end if;
  select r into denied from unnest(p_recipients) r where not herald.can_notify(sender, r) limit 1;
  if found then
    raise exception 'not allowed to notify %', denied using errcode = '42501';
  end if;

  return query
  with notification as (
    insert into herald.notifications
      (sender_id, title, body, image, data, category, priority, overrides, expires_at, request_id)
    values (
      sender,
      p_content ->> 'title',
      p_content ->> 'body',
      p_content ->> 'image',
      coalesce(p_content -> 'data', '{}'),
      p_content ->> 'category',
      coalesce(p_content ->> 'priority', 'normal'),
      coalesce(p_content -> 'overrides', '{}'),
      now() + make_interval(secs => (p_content ->> 'ttl_seconds')::double precision),
      p_request_id
    )
    returning id
  ), created as (
    insert into herald.deliveries (notification_id, recipient_id, channel, device_token_id, target, platform)
    select n.id, t.user_id, 'push', t.id, t.token, t.platform
    from notification n
    join herald.device_tokens t on t.user_id = any (p_recipients)
    where t.disabled_at is null
      and t.last_seen_at > now() - interval '270 days'
    returning 1
  )
  select n.id, (select count(*)::integer from created) from notification n;

  perform pg_notify('herald_outbox', '');
end;
$$;

revoke execute on function herald.enqueue(uuid[], jsonb, text) from public;
grant execute on function herald.enqueue(uuid[], jsonb, text) to authenticated, service_role;
