-- A fan-out's deliveries are written in recipient order (issue 27's lean
-- write path). deliveries_recipient_id_idx is keyed by a random UUID: rows
-- written in the order the audience came each descended to a random leaf of
-- the day's index. Sorted, the inserts walk it left to right and find their
-- pages in cache. It pays where the day's index is large: one
-- 100,000-subscriber topic fan-out in a rolled-back transaction, the
-- backend's CPU, median of six alternating rounds with 5,000,000 deliveries
-- already in the day: 2,979 ms as it was, 2,564 sorted (-14 %); with the day
-- nearly empty, as in bench:bulk, no change beyond the spread. A small send
-- sorts a handful of rows. Otherwise enqueue_and_claim as
-- 20261208100600_lean_write_path_enqueue.sql left it.
create or replace function herald.enqueue_and_claim(
  p_recipients uuid[],
  p_content jsonb,
  p_request_id text default null,
  p_topic text default null,
  p_inline_lease interval default null,
  p_inline_max integer default 10
)
returns table (notification_id uuid, deliveries integer, denied uuid[], denied_count integer,
  claimed jsonb)
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  -- The database role decides, never a claim alone (see herald.is_service).
  v_service boolean := herald.is_service();
  sender uuid := case when v_service then null else auth.uid() end;
  v_channels text[] := coalesce(
    (select array_agg(c) from jsonb_array_elements_text(p_content -> 'channels') c),
    array['push']);
  v_targets jsonb := coalesce(nullif(p_content -> 'targets', 'null'), '[]');
  v_critical boolean;
  v_lane smallint;
  v_category text := p_content ->> 'category';
  v_send_at timestamptz;
  -- Deliveries are due from here: now, or the requested send time.
  v_starts_at timestamptz;
  v_subscribers uuid[] := '{}'::uuid[];
begin
  if not v_service and sender is null then
    raise exception 'enqueue needs a signed-in user or the service role' using errcode = '42501';
  end if;
  if not v_service and (jsonb_array_length(v_targets) > 0 or p_topic is not null) then
    raise exception 'only the service role may notify raw targets or topics' using errcode = '42501';
  end if;
  if not v_service and p_content -> 'overrides' ? 'email' then
    raise exception 'only the service role may set an e-mail''s subject or HTML (overrides.email)'
      using errcode = '42501';
  end if;
  -- Claiming is the dispatcher's: the login (not the role a request switched
  -- to) must be one that may update the outbox.
  if p_inline_lease is not null
     and not has_table_privilege(session_user, 'herald.deliveries', 'UPDATE') then
    raise exception 'only the dispatcher''s login may claim deliveries for an inline attempt'
      using errcode = '42501';
  end if;
  if p_inline_lease <= interval '0' or p_inline_lease > interval '1 hour' then
    raise exception 'an inline lease is more than 0 and at most an hour (HERALD_LEASE_MS)'
      using errcode = '22023';
  end if;
  perform herald.check_content(p_content, p_recipients);
  v_critical := coalesce((p_content ->> 'critical')::boolean, false);
  v_lane := case
    when p_topic is not null or cardinality(p_recipients) > 100 then 2
    when v_critical or p_content ->> 'priority' = 'high' then 0
    else 1 end;
  v_send_at := (p_content ->> 'send_at')::timestamptz;
  v_starts_at := greatest(coalesce(v_send_at, now()), now());
  if not v_channels <@ herald.channel_names() or cardinality(v_channels) = 0 then
    raise exception 'channels must name %, got %',
      array_to_string(herald.channel_names(), ', '), p_content -> 'channels'
      using errcode = '22023';
  end if;
  if jsonb_typeof(v_targets) <> 'array' then
    raise exception 'targets must be an array' using errcode = '22023';
  end if;
  if exists (
    select 1 from jsonb_array_elements(v_targets) t
    where jsonb_typeof(t) <> 'object'
      or not (coalesce(t ->> 'channel', '') = any (herald.channel_names()))
      or (t ->> 'channel' = 'push'
          and num_nonnulls(t ->> 'token', t ->> 'topic', t ->> 'condition') <> 1)
      or (t ->> 'topic') !~ '^[a-zA-Z0-9_.~%-]+$' or length(t ->> 'topic') > 900
      or length(t ->> 'condition') > 1000
      or (t ->> 'channel' = 'webhook' and not exists (
        select 1 from herald.webhook_endpoints e
        where e.id::text = t ->> 'endpoint_id' and e.disabled_at is null))
  ) then
    raise exception 'targets must be push tokens, FCM topics or conditions, e-mail addresses or enabled webhook endpoint ids'
      using errcode = '22023';
  end if;

  if p_topic is not null then
    -- Planned for this topic (dynamic SQL is): under a plan made once for
    -- every topic, a few large topics would make every call scan them all.
    execute 'select coalesce(array_agg(s.user_id), ''{}'') from herald.topic_subscriptions s
             where s.topic = $1'
      into v_subscribers using p_topic;
  end if;

  with audience as materialized (
    select a.user_id, herald.can_notify(sender, a.user_id) as allowed
    from (
      select r as user_id from unnest(coalesce(p_recipients, '{}')) r
      union
      select r from unnest(v_subscribers) r
    ) a
  ), notification as (
    insert into herald.notifications
      (sender_id, title, body, image, data, category, priority, critical, overrides, send_at,
       expires_at, now_or_never, validate_only, request_id, audience)
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
      coalesce((p_content ->> 'ttl_seconds')::numeric = 0, false),
      coalesce((p_content ->> 'validate_only')::boolean, false),
      p_request_id,
      jsonb_strip_nulls(jsonb_build_object(
        'user_ids', nullif(cardinality(coalesce(p_recipients, '{}')), 0),
        'topic', p_topic,
        'targets', nullif(jsonb_array_length(v_targets), 0)))
    where exists (select 1 from audience where allowed) or jsonb_array_length(v_targets) > 0
      or p_topic is not null
    returning id, title, body, image, data, category, priority, overrides, expires_at,
      now_or_never, validate_only, created_at, request_id
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
    -- An FCM topic or condition is one delivery that FCM fans out itself; the
    -- target's prefix ('/topics/', 'condition:') tells the message builder.
    select null::uuid, x.channel, tok.id, e.id,
      coalesce(x.token, '/topics/' || x.topic, 'condition:' || x.condition, x.address, e.url),
      coalesce(x.platform, tok.platform), v_starts_at
    from jsonb_to_recordset(v_targets)
      as x(channel text, token text, platform text, topic text, condition text, address text,
           endpoint_id uuid)
    left join herald.device_tokens tok on x.channel = 'push' and tok.token = x.token
    left join herald.webhook_endpoints e on x.channel = 'webhook' and e.id = x.endpoint_id
    where coalesce(x.token, x.topic, x.condition, x.address, e.url) is not null
      and tok.disabled_at is null
  ), inline as (
    -- Claimed as they are written when the caller attempts them inline: every
    -- one of at most p_inline_max, each only if due now. The claim's update,
    -- in one statement less.
    select p_inline_lease is not null and (select count(*) from wanted) <= p_inline_max as claim
  ), created as (
    insert into herald.deliveries
      (notification_id, recipient_id, channel, device_token_id, webhook_endpoint_id, target,
       platform, next_attempt_at, lane, attempts, locked_until)
    select n.id, w.user_id, w.channel, w.device_token_id, w.webhook_endpoint_id, w.target,
      w.platform, case when c.now then now() + p_inline_lease else w.due_at end, v_lane,
      c.now::integer, case when c.now then now() + p_inline_lease end
    from notification n, wanted w, inline i,
      lateral (select i.claim and w.due_at <= now() as now) c
    order by w.user_id
    returning id, created_at, channel, target, platform, recipient_id, webhook_endpoint_id,
      attempts, locked_until
  )
  select
    (select n.id from notification n),
    (select count(*)::integer from created),
    coalesce((select array_agg(d.user_id) from (
      select a.user_id from audience a where not a.allowed limit 1000) d), '{}'),
    (select count(*)::integer from audience a where not a.allowed),
    -- What claimDue answers for each row, as JSON.
    (select jsonb_agg(jsonb_build_object(
        'id', d.id, 'row_created_at', d.created_at::text, 'attempts', d.attempts,
        'channel', d.channel, 'target', d.target, 'platform', d.platform,
        'recipient_id', d.recipient_id, 'webhook_endpoint_id', d.webhook_endpoint_id,
        'lease', d.locked_until::text,
        -- Its token or endpoint was enabled a moment ago (wanted's filters).
        'target_disabled', false,
        'secrets', (select to_jsonb(array_remove(array[e.secret,
                      case when e.previous_secret_expires_at > now() then e.previous_secret end],
                      null))
                    from herald.webhook_endpoints e
                    where d.channel = 'webhook' and e.id = d.webhook_endpoint_id),
        'notification_id', n.id, 'title', n.title, 'body', n.body, 'image', n.image,
        'data', n.data, 'category', n.category, 'priority', n.priority,
        'overrides', n.overrides, 'expires_at', n.expires_at, 'now_or_never', n.now_or_never,
        'validate_only', n.validate_only, 'created_at', n.created_at, 'request_id', n.request_id))
     from created d, notification n where d.locked_until is not null)
  into notification_id, deliveries, denied, denied_count, claimed;

  -- Dispatchers are woken only for what the inline attempt left them.
  if deliveries > coalesce(jsonb_array_length(claimed), 0) then
    perform pg_notify('herald_outbox', '');
  end if;
  return next;
end;
$$;

revoke all on function herald.enqueue_and_claim(uuid[], jsonb, text, text, interval, integer)
  from public;
grant execute on function herald.enqueue_and_claim(uuid[], jsonb, text, text, interval, integer)
  to authenticated, service_role;
