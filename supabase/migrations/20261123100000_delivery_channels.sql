-- E-mail and webhook deliveries beside push: customers' webhook endpoints,
-- the outbox columns they need, and enqueue fanning out over channels.

-- A customer's HTTPS endpoint that receives notifications for its owner, signed
-- per Standard Webhooks with a whsec_ secret. During a rotation the previous
-- secret also signs until previous_secret_expires_at, so receivers can switch
-- without dropping a request.
create table herald.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  url text not null check (url ~ '^https?://' and length(url) <= 2048),
  secret text not null check (secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
  previous_secret text check (previous_secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
  previous_secret_expires_at timestamptz,
  created_at timestamptz not null default now(),
  -- Set when the endpoint answers 410 Gone; disabled endpoints get nothing.
  disabled_at timestamptz,
  disabled_reason text
);

comment on table herald.webhook_endpoints is
  'Webhook endpoints. Owners read, re-point and delete their own; creation and secret rotation go through functions that generate the secret.';

create index webhook_endpoints_owner_id_idx on herald.webhook_endpoints (owner_id);

alter table herald.webhook_endpoints enable row level security;

grant select, delete on herald.webhook_endpoints to authenticated;
grant update (url, disabled_at, disabled_reason) on herald.webhook_endpoints to authenticated;
grant all on herald.webhook_endpoints to service_role;

create policy "webhook_endpoints: owner can select" on herald.webhook_endpoints
  for select to authenticated using (owner_id = (select auth.uid()));
-- Owners may re-point an endpoint or re-enable it after fixing their receiver.
create policy "webhook_endpoints: owner can update" on herald.webhook_endpoints
  for update to authenticated
  using (owner_id = (select auth.uid()))
  with check (owner_id = (select auth.uid()));
create policy "webhook_endpoints: owner can delete" on herald.webhook_endpoints
  for delete to authenticated using (owner_id = (select auth.uid()));

-- 24 random bytes, base64: the secret format Standard Webhooks libraries expect.
create function herald.new_webhook_secret() returns text
language sql volatile set search_path = ''
as $$ select 'whsec_' || encode(extensions.gen_random_bytes(24), 'base64') $$;

revoke execute on function herald.new_webhook_secret() from public;

-- Registers an endpoint for the caller (or, for the service role, p_owner).
create function herald.create_webhook_endpoint(p_url text, p_owner uuid default null)
returns herald.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
  owner uuid := case when auth.role() = 'service_role' then p_owner else auth.uid() end;
  created herald.webhook_endpoints;
begin
  if owner is null then
    raise exception 'create_webhook_endpoint needs a signed-in user or the service role with an owner'
      using errcode = '42501';
  end if;
  insert into herald.webhook_endpoints (owner_id, url, secret)
  values (owner, p_url, herald.new_webhook_secret())
  returning * into created;
  return created;
end;
$$;

-- Replaces an endpoint's secret; the old one keeps signing for p_overlap.
create function herald.rotate_webhook_secret(p_endpoint_id uuid, p_overlap interval default '24 hours')
returns herald.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
  rotated herald.webhook_endpoints;
begin
  update herald.webhook_endpoints e
  set previous_secret = e.secret,
      previous_secret_expires_at = now() + p_overlap,
      secret = herald.new_webhook_secret()
  where e.id = p_endpoint_id
    and (auth.role() = 'service_role' or e.owner_id = auth.uid())
  returning * into rotated;
  if not found then
    raise exception 'no webhook endpoint % of yours', p_endpoint_id using errcode = 'P0002';
  end if;
  return rotated;
end;
$$;

revoke execute on function herald.create_webhook_endpoint(text, uuid),
  herald.rotate_webhook_secret(uuid, interval) from public;
grant execute on function herald.create_webhook_endpoint(text, uuid),
  herald.rotate_webhook_secret(uuid, interval) to authenticated, service_role;

alter table herald.deliveries
  add column webhook_endpoint_id uuid references herald.webhook_endpoints (id) on delete set null;

create index deliveries_webhook_endpoint_id_idx on herald.deliveries (webhook_endpoint_id)
  where webhook_endpoint_id is not null;

-- enqueue, now over channels: content.channels (default ["push"]) picks push
-- (every live device token), email (the user's auth e-mail) and webhook (every
-- enabled endpoint the recipient owns). Same signature, same guarantees.
create or replace function herald.enqueue(
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
  channels text[] := coalesce(
    (select array_agg(c) from jsonb_array_elements_text(p_content -> 'channels') c),
    array['push']);
  denied uuid;
begin
  if caller_role is distinct from 'service_role' and sender is null then
    raise exception 'enqueue needs a signed-in user or the service role' using errcode = '42501';
  end if;
  if not channels <@ array['push', 'email', 'webhook'] then
    raise exception 'unknown channel in %', channels using errcode = '22023';
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
  ), targets as (
    select t.user_id, 'push' as channel, t.id as device_token_id,
      null::uuid as webhook_endpoint_id, t.token as target, t.platform
    from herald.device_tokens t
    where 'push' = any (channels)
      and t.user_id = any (p_recipients)
      and t.disabled_at is null
      and t.last_seen_at > now() - interval '270 days'
    union all
    select u.id, 'email', null, null, u.email, null
    from auth.users u
    where 'email' = any (channels) and u.id = any (p_recipients) and u.email is not null
    union all
    select e.owner_id, 'webhook', null, e.id, e.url, null
    from herald.webhook_endpoints e
    where 'webhook' = any (channels) and e.owner_id = any (p_recipients) and e.disabled_at is null
  ), created as (
    insert into herald.deliveries
      (notification_id, recipient_id, channel, device_token_id, webhook_endpoint_id, target, platform)
    select n.id, t.user_id, t.channel, t.device_token_id, t.webhook_endpoint_id, t.target, t.platform
    from notification n, targets t
    returning 1
  )
  select n.id, (select count(*)::integer from created) from notification n;

  perform pg_notify('herald_outbox', '');
end;
$$;
