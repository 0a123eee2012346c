-- The public API's data: topics, preferences (opt-outs, quiet hours),
-- idempotency keys, scheduling and cancelling — and enqueue reporting denied
-- recipients one by one instead of failing the whole request.

-- Users subscribe themselves to named topics; a bulk notification to a topic
-- reaches every subscriber (expanded inside Postgres, never in JavaScript).
create table herald.topic_subscriptions (
  topic text not null check (topic ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (topic, user_id)
);

comment on table herald.topic_subscriptions is
  'Topic subscriptions. Users see, add and remove their own (where can_subscribe allows); services manage anyone''s.';

create index topic_subscriptions_user_id_idx on herald.topic_subscriptions (user_id);

alter table herald.topic_subscriptions enable row level security;
grant select, insert, delete on herald.topic_subscriptions to authenticated;
grant all on herald.topic_subscriptions to service_role;

create policy "topic_subscriptions: owner can select" on herald.topic_subscriptions
  for select to authenticated using (user_id = (select auth.uid()));
-- Which topics a user may join by themself. Projects replace this function
-- (teams, plans, …). The default: open topics are plain names ('news',
-- 'release-notes'); names with a ':' ('org:acme:admins') are namespaced and
-- only services subscribe users to them.
create function herald.can_subscribe(p_user uuid, p_topic text) returns boolean
language sql stable set search_path = ''
as $$ select p_user is not null and position(':' in p_topic) = 0 $$;

grant execute on function herald.can_subscribe(uuid, text) to authenticated, service_role;

create policy "topic_subscriptions: owner can insert where can_subscribe allows"
  on herald.topic_subscriptions
  for insert to authenticated
  with check (user_id = (select auth.uid()) and herald.can_subscribe(user_id, topic));
create policy "topic_subscriptions: owner can delete" on herald.topic_subscriptions
  for delete to authenticated using (user_id = (select auth.uid()));

-- True when p_zone is a time zone Postgres knows (IANA names such as 'Europe/Berlin').
create function herald.is_time_zone(p_zone text) returns boolean
language sql stable set search_path = ''
as $$
  select exists (select 1 from pg_catalog.pg_timezone_names where lower(name) = lower(p_zone))
$$;

grant execute on function herald.is_time_zone(text) to authenticated, service_role;

-- A user's delivery preferences: their time zone and quiet hours. During quiet
-- hours non-critical pushes wait for the window's end; they are not dropped.
create table herald.preferences (
  user_id uuid primary key references auth.users (id) on delete cascade,
  time_zone text not null default 'UTC' check (herald.is_time_zone(time_zone)),
  quiet_start time,
  quiet_end time,
  updated_at timestamptz not null default now(),
  check ((quiet_start is null) = (quiet_end is null)),
  check (quiet_start is distinct from quiet_end or quiet_start is null)
);

comment on table herald.preferences is
  'Per-user time zone and quiet hours. Users read and write their own row only.';

alter table herald.preferences enable row level security;
grant select, insert, update, delete on herald.preferences to authenticated;
grant all on herald.preferences to service_role;

create policy "preferences: owner can select" on herald.preferences
  for select to authenticated using (user_id = (select auth.uid()));
create policy "preferences: owner can insert" on herald.preferences
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "preferences: owner can update" on herald.preferences
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "preferences: owner can delete" on herald.preferences
  for delete to authenticated using (user_id = (select auth.uid()));

-- Opt-outs: no deliveries on `channel` for notifications of `category`
-- ('*' = every category, including uncategorised ones).
create table herald.opt_outs (
  user_id uuid not null references auth.users (id) on delete cascade,
  category text not null check (category = '*' or category ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  channel text not null check (channel in ('push', 'email', 'webhook')),
  created_at timestamptz not null default now(),
  primary key (user_id, channel, category)
);

comment on table herald.opt_outs is
  'Per-user opt-outs by category and channel. Users read and write their own rows only.';

alter table herald.opt_outs enable row level security;
grant select, insert, delete on herald.opt_outs to authenticated;
grant all on herald.opt_outs to service_role;

create policy "opt_outs: owner can select" on herald.opt_outs
  for select to authenticated using (user_id = (select auth.uid()));
create policy "opt_outs: owner can insert" on herald.opt_outs
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "opt_outs: owner can delete" on herald.opt_outs
  for delete to authenticated using (user_id = (select auth.uid()));

-- Idempotency keys: a repeat of a request with the same key within 24 hours
-- gets the first answer; the same key with another body is refused. Scoped by
-- caller ('user:<id>' or 'key:<fingerprint of the service key>').
create table herald.idempotency_keys (
  caller text not null check (length(caller) <= 80),
  key text not null check (length(key) between 1 and 255),
  request_hash text not null,
  -- No foreign key: a user writing their own key row must not learn, from a
  -- key violation, whether somebody else's notification id exists.
  notification_id uuid,
  status integer,
  response jsonb,
  created_at timestamptz not null default now(),
  primary key (caller, key)
);

comment on table herald.idempotency_keys is
  'Idempotency keys of notify requests (24 h). Users reach only their own; the service role all.';

create index idempotency_keys_created_at_idx on herald.idempotency_keys (created_at);

alter table herald.idempotency_keys enable row level security;
grant select, insert, update on herald.idempotency_keys to authenticated;
grant all on herald.idempotency_keys to service_role;

create policy "idempotency_keys: owner can select" on herald.idempotency_keys
  for select to authenticated using (caller = 'user:' || (select auth.uid())::text);
create policy "idempotency_keys: owner can insert" on herald.idempotency_keys
  for insert to authenticated with check (caller = 'user:' || (select auth.uid())::text);
create policy "idempotency_keys: owner can update" on herald.idempotency_keys
  for update to authenticated
  using (caller = 'user:' || (select auth.uid())::text)
  with check (caller = 'user:' || (select auth.uid())::text);

alter table herald.notifications
  add column critical boolean not null default false,
  add column send_at timestamptz,
  -- How the audience was named: {"user_ids": n} or {"topic": "…"}; raw targets count too.
  add column audience jsonb not null default '{}' check (jsonb_typeof(audience) = 'object');

-- The correlation id of the request that asked for a notification, on every
-- attempt to deliver it, so one id finds the request, its logs and its sends.
alter table herald.delivery_attempts
  add column request_id text check (length(request_id) <= 128);

-- The end of a quiet-hours window that p_at falls in, else p_at. Windows may
-- cross midnight (22:00–07:00); times are wall-clock times in p_zone.
create function herald.quiet_hours_end(p_at timestamptz, p_zone text, p_start time, p_end time)
returns timestamptz
language sql stable set search_path = ''
as $$
  select case
    when p_start is null or p_end is null then p_at
    when p_start < p_end then
      case when local::time >= p_start and local::time < p_end
        then (local::date + p_end) at time zone p_zone else p_at end
    else
      case
        when local::time >= p_start then (local::date + 1 + p_end) at time zone p_zone
        when local::time < p_end then (local::date + p_end) at time zone p_zone
        else p_at
      end
  end
  from (select p_at at time zone p_zone as local) l
$$;

grant execute on function herald.quiet_hours_end(timestamptz, text, time, time)
  to authenticated, service_role;

-- enqueue, with per-recipient authorisation, topics, raw targets, opt-outs,
-- quiet hours and scheduling. One statement creates the notification and all
-- of its deliveries, so a trigger calling it is lossless and transactional.
--
--   p_recipients  user ids (may be empty when p_topic or raw targets are given)
--   p_content     title, body, image, data, category, priority, critical,
--                 channels (default ["push"]), ttl_seconds, send_at, overrides,
--                 and for the service role only: targets — raw addresses,
--                 [{"channel":"push","token":…,"platform":…},
--                  {"channel":"email","address":…}, {"channel":"webhook","endpoint_id":…}]
--   p_request_id  the correlation id, kept with the notification
--   p_topic       every subscriber of this topic joins the audience (service role only)
--
-- Recipients can_notify refuses are returned in `denied` (at most 1000 ids)
-- and counted in `denied_count`; when nobody named is left, no notification is
-- made (a topic always gets one, so a bulk job id exists even for an empty topic).
drop function herald.enqueue(uuid[], jsonb, text);

create function herald.enqueue(
  p_recipients uuid[],
  p_content jsonb,
  p_request_id text default null,
  p_topic text default null
)
returns table (notification_id uuid, deliveries integer, denied uuid[], denied_count integer)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  -- A session without JWT claims that has not switched to an API role is a
  -- direct database connection (a backend, pg_cron, a migration): trusted
  -- like the service role, so triggers can call enqueue from any session.
  caller_role text := coalesce(nullif(auth.role(), ''),
    case when current_setting('role') not in ('anon', 'authenticated') then 'service_role' end);
  sender uuid := case when caller_role = 'service_role' then null else auth.uid() end;
  v_channels text[] := coalesce(
    (select array_agg(c) from jsonb_array_elements_text(p_content -> 'channels') c),
    array['push']);
  v_targets jsonb := coalesce(nullif(p_content -> 'targets', 'null'), '[]');
  v_critical boolean := coalesce((p_content ->> 'critical')::boolean, false);
  v_category text := p_content ->> 'category';
  v_send_at timestamptz := (p_content ->> 'send_at')::timestamptz;
  -- Deliveries are due from here: now, or the requested send time.
  v_starts_at timestamptz := greatest(coalesce((p_content ->> 'send_at')::timestamptz, now()), now());
begin
  if caller_role is distinct from 'service_role' and sender is null then
    raise exception 'enqueue needs a signed-in user or the service role' using errcode = '42501';
  end if;
  if caller_role is distinct from 'service_role' and (jsonb_array_length(v_targets) > 0 or p_topic is not null) then
    raise exception 'only the service role may notify raw targets or topics' using errcode = '42501';
  end if;
  if not v_channels <@ array['push', 'email', 'webhook'] or cardinality(v_channels) = 0 then
    raise exception 'channels must name push, email or webhook, got %', p_content -> 'channels'
      using errcode = '22023';
  end if;
  if jsonb_typeof(v_targets) <> 'array' then
    raise exception 'targets must be an array' using errcode = '22023';
  end if;
  if exists (
    select 1 from jsonb_array_elements(v_targets) t
    where jsonb_typeof(t) <> 'object'
      or coalesce(t ->> 'channel', '') not in ('push', 'email', 'webhook')
      or (t ->> 'channel' = 'webhook' and not exists (
        select 1 from herald.webhook_endpoints e
        where e.id::text = t ->> 'endpoint_id' and e.disabled_at is null))
  ) then
    raise exception 'targets must be push tokens, e-mail addresses or enabled webhook endpoint ids'
      using errcode = '22023';
  end if;

  return query
  with audience as materialized (
    select a.user_id, herald.can_notify(sender, a.user_id) as allowed
    from (
      select r as user_id from unnest(coalesce(p_recipients, '{}')) r
      union
      select s.user_id from herald.topic_subscriptions s where s.topic = p_topic
    ) a
  ), notification as (
    insert into herald.notifications
      (sender_id, title, body, image, data, category, priority, critical, overrides, send_at,
       expires_at, request_id, audience)
    select
      sender,
      p_content ->> 'title',
      p_content ->> 'body',
      p_content ->> 'image',
      coalesce(p_content -> 'data', '{}'),
      v_category,
      coalesce(p_content ->> 'priority', 'normal'),
      v_critical,
      coalesce(p_content -> 'overrides', '{}'),
      v_send_at,
      v_starts_at + make_interval(secs => (p_content ->> 'ttl_seconds')::double precision),
      p_request_id,
      jsonb_strip_nulls(jsonb_build_object(
        'user_ids', nullif(cardinality(coalesce(p_recipients, '{}')), 0),
        'topic', p_topic,
        'targets', nullif(jsonb_array_length(v_targets), 0)))
    where exists (select 1 from audience where allowed) or jsonb_array_length(v_targets) > 0
      or p_topic is not null
    returning id
  ), allowed as (
    select a.user_id from audience a
    where a.allowed
  ), targets as (
    select t.user_id, 'push' as channel, t.id as device_token_id,
      null::uuid as webhook_endpoint_id, t.token as target, t.platform
    from allowed a
    join herald.device_tokens t on t.user_id = a.user_id
    where 'push' = any (v_channels)
      and t.disabled_at is null
      and t.last_seen_at > now() - interval '270 days'
    union all
    select u.id, 'email', null, null, u.email, null
    from allowed a
    join auth.users u on u.id = a.user_id
    where 'email' = any (v_channels) and u.email is not null
    union all
    select e.owner_id, 'webhook', null, e.id, e.url, null
    from allowed a
    join herald.webhook_endpoints e on e.owner_id = a.user_id
    where 'webhook' = any (v_channels) and e.disabled_at is null
  ), wanted as (
    -- Opt-outs drop a channel for a category; quiet hours delay non-critical pushes.
    select t.*,
      case when t.channel = 'push' and not v_critical and p.quiet_start is not null
        then herald.quiet_hours_end(v_starts_at, p.time_zone, p.quiet_start, p.quiet_end)
        else v_starts_at
      end as due_at
    from targets t
    left join herald.preferences p on p.user_id = t.user_id
    where not exists (
      select 1 from herald.opt_outs o
      where o.user_id = t.user_id and o.channel = t.channel
        and (o.category = '*' or o.category = v_category)
    )
    union all
    -- Raw targets (service role only): addresses, each naming its own channel;
    -- no user behind them, so no preferences. A token known to be dead is skipped.
    select null::uuid, x.channel, tok.id, e.id,
      coalesce(x.token, x.address, e.url), coalesce(x.platform, tok.platform), v_starts_at
    from jsonb_to_recordset(v_targets)
      as x(channel text, token text, platform text, address text, endpoint_id uuid)
    left join herald.device_tokens tok on x.channel = 'push' and tok.token = x.token
    left join herald.webhook_endpoints e on x.channel = 'webhook' and e.id = x.endpoint_id
    where coalesce(x.token, x.address, e.url) is not null and tok.disabled_at is null
  ), created as (
    insert into herald.deliveries
      (notification_id, recipient_id, channel, device_token_id, webhook_endpoint_id, target,
       platform, next_attempt_at)
    select n.id, w.user_id, w.channel, w.device_token_id, w.webhook_endpoint_id, w.target,
      w.platform, w.due_at
    from notification n, wanted w
    returning 1
  )
  select
    (select n.id from notification n),
    (select count(*)::integer from created),
    coalesce((select array_agg(d.user_id) from (
      select a.user_id from audience a where not a.allowed limit 1000) d), '{}'),
    (select count(*)::integer from audience a where not a.allowed);

  perform pg_notify('herald_outbox', '');
end;
$$;

revoke execute on function herald.enqueue(uuid[], jsonb, text, text) from public;
grant execute on function herald.enqueue(uuid[], jsonb, text, text) to authenticated, service_role;

-- Cancels what of a notification has not gone out yet. Its sender (or the
-- service role) may; recipients may not. Returns how many deliveries stopped,
-- or raises no_data_found when the caller cannot see such a notification.
-- Deliveries a dispatcher is sending right now (leased) are left to finish:
-- marking them cancelled could not stop a push already on its way.
create function herald.cancel_notification(p_notification_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  cancelled integer;
begin
  if not exists (
    select 1 from herald.notifications n
    where n.id = p_notification_id
      and (auth.role() = 'service_role' or (n.sender_id is not null and n.sender_id = auth.uid()))
  ) then
    raise exception 'no notification % sent by you', p_notification_id using errcode = 'P0002';
  end if;
  update herald.deliveries d
  set status = 'cancelled', last_error = 'cancelled by the sender', locked_until = null,
    updated_at = now()
  where d.notification_id = p_notification_id and d.status = 'pending'
    and (d.locked_until is null or d.locked_until < now());
  get diagnostics cancelled = row_count;
  return cancelled;
end;
$$;

revoke execute on function herald.cancel_notification(uuid) from public;
grant execute on function herald.cancel_notification(uuid) to authenticated, service_role;

-- Forgets idempotency keys older than a day (pg_cron on Supabase; see README).
create function herald.prune_idempotency_keys(p_keep interval default '24 hours')
returns integer
language sql volatile set search_path = ''
as $$
  with gone as (
    delete from herald.idempotency_keys where created_at < now() - p_keep returning 1
  )
  select count(*)::integer from gone
$$;

revoke execute on function herald.prune_idempotency_keys(interval) from public;
grant execute on function herald.prune_idempotency_keys(interval) to service_role;
