-- The delivery engine under faults: attempts whose outcome was never written
-- become visible, and failed deliveries can be replayed like dead letters.

-- 'unknown': a dispatcher claimed the delivery and never reported (it crashed,
-- or its lease ran out first). The provider may or may not have received it,
-- so a later 'sent' for the same delivery may be a duplicate at the receiver.
alter table herald.delivery_attempts drop constraint delivery_attempts_outcome_check;
alter table herald.delivery_attempts add constraint delivery_attempts_outcome_check
  check (outcome in ('sent', 'retry', 'failed', 'expired', 'dead', 'unknown'));

-- Makes deliveries in p_statuses ('dead', 'failed') due again with a fresh
-- attempt budget: the given ids, or every such delivery of p_notification_id,
-- or (both null) all of them. 'failed' is for failures the operator fixed
-- (credentials, a rejected payload, a receiver's configuration); a delivery
-- whose token or endpoint is disabled fails again at once. Attempt history
-- stays. Returns how many were replayed.
create function herald.replay_deliveries(
  p_statuses text[],
  p_delivery_ids uuid[] default null,
  p_notification_id uuid default null
)
returns integer
language plpgsql volatile set search_path = ''
as $$
declare
  replayed integer;
begin
  if p_statuses is null or cardinality(p_statuses) = 0
     or not p_statuses <@ array['dead', 'failed'] then
    raise exception 'only dead and failed deliveries can be replayed, got %', p_statuses
      using errcode = '22023';
  end if;
  update herald.deliveries d
  set status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = null,
      updated_at = now()
  where d.status = any (p_statuses)
    and (p_delivery_ids is null or d.id = any (p_delivery_ids))
    and (p_notification_id is null or d.notification_id = p_notification_id);
  get diagnostics replayed = row_count;
  if replayed > 0 then
    perform pg_notify('herald_outbox', '');
  end if;
  return replayed;
end;
$$;

revoke execute on function herald.replay_deliveries(text[], uuid[], uuid) from public;
grant execute on function herald.replay_deliveries(text[], uuid[], uuid) to service_role;

create index deliveries_failed_idx on herald.deliveries (updated_at desc) where status = 'failed';

-- enqueue, unchanged but for how it finds the audience's targets. Since the
-- public API (20261124100000) it joined device tokens to the audience, and on
-- a large token table the planner chose a sequential scan per call: with
-- 100,000 tokens every notify spent ~40 ms of Postgres CPU in it, and
-- bench:dispatch's enqueue-to-sent p95 went from ~120 ms to ~5 s. Looking
-- the ids up with "= any (array)" uses the user_id indexes whatever the plan.
create or replace function herald.enqueue(
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
  ), allowed as materialized (
    -- An array, looked up with "= any": a join against the audience let the
    -- planner (or a cached generic plan) scan every device token per call.
    select coalesce(array_agg(a.user_id), '{}') as ids from audience a where a.allowed
  ), targets as (
    select t.user_id, 'push' as channel, t.id as device_token_id,
      null::uuid as webhook_endpoint_id, t.token as target, t.platform
    from herald.device_tokens t
    where 'push' = any (v_channels)
      and t.user_id = any ((select ids from allowed)::uuid[])
      and t.disabled_at is null
      and t.last_seen_at > now() - interval '270 days'
    union all
    select u.id, 'email', null, null, u.email, null
    from auth.users u
    where 'email' = any (v_channels) and u.id = any ((select ids from allowed)::uuid[])
      and u.email is not null
    union all
    select e.owner_id, 'webhook', null, e.id, e.url, null
    from herald.webhook_endpoints e
    where 'webhook' = any (v_channels) and e.owner_id = any ((select ids from allowed)::uuid[])
      and e.disabled_at is null
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

-- The dead-letter replay is now the 'dead' case of replay_deliveries: one body, not two.
create or replace function herald.replay_dead_letters(
  p_delivery_ids uuid[] default null,
  p_notification_id uuid default null
)
returns integer
language sql volatile set search_path = ''
as $$ select herald.replay_deliveries(array['dead'], p_delivery_ids, p_notification_id) $$;
