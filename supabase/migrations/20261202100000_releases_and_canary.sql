-- Releases, the dispatcher's canary share and validate_only (issue 14). Expand only: the
-- previous release runs unchanged on this schema.
--
-- scripts/deployment-manager.sh records every deploy here, in the database of
-- the environment it deployed (staging and production are separate projects),
-- so the record outlives CI runners and a human on call sees the same list.

create table herald.releases (
  id bigint generated always as identity primary key,
  git_sha text not null check (git_sha ~ '^[0-9a-f]{7,40}$'),
  -- The tag the manager made for this deploy; rollback redeploys from it.
  git_tag text check (git_tag ~ '^[A-Za-z0-9._/-]{1,200}$'),
  -- canary: serving its share beside stable; live: serving everything;
  -- superseded: a newer release went live; rolled_back: taken out of service.
  state text not null check (state in ('canary', 'live', 'superseded', 'rolled_back')),
  canary_percent smallint check (canary_percent between 0 and 100),
  -- [{slug, version, ezbr_sha256}] as `supabase functions list` reported them after the deploy.
  functions jsonb not null default '[]' check (jsonb_typeof(functions) = 'array'),
  -- The newest file of supabase/migrations/ at git_sha: rollback refuses to
  -- cross a later migration marked `-- herald:breaking`.
  latest_migration text not null check (latest_migration ~ '^[0-9]{14}_[a-z0-9_]+\.sql$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- At most one release in each of the serving states.
create unique index releases_one_canary_idx on herald.releases ((true)) where state = 'canary';
create unique index releases_one_live_idx on herald.releases ((true)) where state = 'live';

alter table herald.releases enable row level security;
-- Deployments only: no policy, and no grant to the API's roles.
revoke all on herald.releases from public, anon, authenticated;

-- The share of dispatch rounds pg_cron sends to the canary's dispatch
-- function (hosted Supabase has no traffic splitting: the canary is the
-- `dispatch-canary` slug beside `dispatch`). One row; 0 when no canary runs.
create table herald.dispatch_canary (
  id boolean primary key default true check (id),
  percent smallint not null default 0 check (percent between 0 and 100),
  updated_at timestamptz not null default now()
);
insert into herald.dispatch_canary default values;

alter table herald.dispatch_canary enable row level security;
revoke all on herald.dispatch_canary from public, anon, authenticated;

-- The URL one dispatch round goes to: the canary slug (`<stable URL>-canary`)
-- for `percent` of rounds, chosen at random per round, else the stable one.
create function herald.dispatch_url(p_stable_url text) returns text
language sql volatile set search_path = ''
as $$
  select case
    when p_stable_url is not null
     and random() * 100 < (select percent from herald.dispatch_canary where id)
    then rtrim(p_stable_url, '/') || '-canary'
    else p_stable_url
  end
$$;

revoke execute on function herald.dispatch_url(text) from public;

-- The schedule sends each round through herald.dispatch_url. Only where it
-- was scheduled (pg_cron, pg_net and Vault: hosted Supabase).
do $schedule$
begin
  if to_regclass('cron.job') is null then
    return;
  end if;
  if not exists (select 1 from cron.job where jobname = 'herald-dispatch') then
    return;
  end if;
  perform cron.schedule('herald-dispatch', '5 seconds', $job$
    select net.http_post(
      url := herald.dispatch_url(
        (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_url')),
      headers := jsonb_build_object(
        'content-type', 'application/json',
        'authorization', 'Bearer ' ||
          (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_key')),
      body := '{}'::jsonb,
      timeout_milliseconds := 60000)
    where herald.work_is_due()
  $job$);
end;
$schedule$;

-- validate_only: FCM checks the whole message and the device token and
-- delivers nothing (HTTP v1's request-level `validate_only`). The deploy
-- pipeline's smoke test goes through the real path this way without
-- disturbing a phone. Push only: e-mail and webhooks have no such mode.
alter table herald.notifications add column validate_only boolean not null default false;

-- check_content: validate_only known, boolean, and push alone. Otherwise unchanged.
create or replace function herald.check_content(p_content jsonb, p_recipients uuid[])
returns void
language plpgsql stable set search_path = ''
as $$
declare
  bad text;
  v_send_at timestamptz;
begin
  if jsonb_typeof(p_content) is distinct from 'object' then
    raise exception 'content must be a JSON object' using errcode = '22023';
  end if;
  select k into bad from jsonb_object_keys(p_content) k
  where k not in ('title', 'body', 'image', 'data', 'channels', 'overrides', 'category',
                  'priority', 'critical', 'ttl_seconds', 'send_at', 'targets', 'validate_only')
  limit 1;
  if bad is not null then
    raise exception 'unknown content field %', bad using errcode = '22023';
  end if;
  if cardinality(p_recipients) > 10000 then
    raise exception 'at most 10000 recipients per call' using errcode = '22023';
  end if;
  if jsonb_typeof(p_content -> 'targets') = 'array'
     and jsonb_array_length(p_content -> 'targets') > 1000 then
    raise exception 'at most 1000 targets per call' using errcode = '22023';
  end if;
  -- Text fields: strings of the API's lengths (characters, as the API counts them).
  select f into bad from (values ('title', 1024), ('body', 4096), ('image', 2048)) v(f, max_len)
  where nullif(p_content -> f, 'null') is not null
    and (jsonb_typeof(p_content -> f) <> 'string'
         or length(p_content ->> f) not between 1 and max_len)
  limit 1;
  if bad is not null then
    raise exception '% must be a string of 1 to % characters', bad,
      case bad when 'title' then 1024 when 'body' then 4096 else 2048 end using errcode = '22023';
  end if;
  if p_content ->> 'image' !~* '^https?://' then
    raise exception 'image must be an http(s) URL' using errcode = '22023';
  end if;
  if coalesce(jsonb_typeof(nullif(p_content -> 'data', 'null')), 'object') <> 'object' then
    raise exception 'data must be an object of strings' using errcode = '22023';
  end if;
  select d.key into bad from jsonb_each(coalesce(nullif(p_content -> 'data', 'null'), '{}')) d
  where jsonb_typeof(d.value) <> 'string' or length(d.value #>> '{}') > 4096
    or length(d.key) not between 1 and 256
    or d.key ~ '^(from|notification|message_type|collapse_key)$|^(google|gcm)\.'
  limit 1;
  if bad is not null then
    raise exception 'data.% must be a string of at most 4096 characters under a key FCM does not reserve', bad
      using errcode = '22023';
  end if;
  if coalesce(p_content ->> 'title', p_content ->> 'body') is null
     and coalesce(nullif(p_content -> 'data', 'null'), '{}') = '{}' then
    raise exception 'a notification needs a title, a body or data' using errcode = '22023';
  end if;
  if p_content ->> 'category' !~ '^[a-z0-9][a-z0-9._-]{0,63}$' then
    raise exception 'category must be 1-64 lowercase letters, digits, ".", "_" or "-"' using errcode = '22023';
  end if;
  if coalesce(p_content ->> 'priority', 'normal') not in ('normal', 'high') then
    raise exception 'priority must be normal or high' using errcode = '22023';
  end if;
  if coalesce(jsonb_typeof(nullif(p_content -> 'critical', 'null')), 'boolean') <> 'boolean' then
    raise exception 'critical must be a boolean' using errcode = '22023';
  end if;
  -- A CASE, because AND does not promise to skip the cast for a non-number.
  if (case
       when nullif(p_content -> 'ttl_seconds', 'null') is null then false
       when jsonb_typeof(p_content -> 'ttl_seconds') = 'number'
         then not ((p_content ->> 'ttl_seconds')::numeric between 0 and 2419200
                   and (p_content ->> 'ttl_seconds')::numeric % 1 = 0)
       else true
     end) then
    raise exception 'ttl_seconds must be whole seconds from 0 to 2419200 (28 days)' using errcode = '22023';
  end if;
  if nullif(p_content -> 'send_at', 'null') is not null then
    begin
      v_send_at := (p_content ->> 'send_at')::timestamptz;
    exception when others then
      raise exception 'send_at must be an ISO 8601 time with an offset' using errcode = '22023';
    end;
    if v_send_at > now() + interval '30 days' or v_send_at < '2000-01-01T00:00:00Z' then
      raise exception 'send_at must be after 2000-01-01 and at most 30 days ahead' using errcode = '22023';
    end if;
  end if;
  if coalesce(jsonb_typeof(nullif(p_content -> 'validate_only', 'null')), 'boolean') <> 'boolean' then
    raise exception 'validate_only must be true or false' using errcode = '22023';
  end if;
  if coalesce((p_content ->> 'validate_only')::boolean, false)
     and (coalesce(p_content -> 'channels', '["push"]') <> '["push"]'
          or exists (select 1 from jsonb_array_elements(
                       case when jsonb_typeof(p_content -> 'targets') = 'array'
                            then p_content -> 'targets' else '[]' end) t
                     where t ->> 'channel' is distinct from 'push')) then
    raise exception 'validate_only is for push alone: e-mail and webhooks cannot be checked without being delivered'
      using errcode = '22023';
  end if;
  if coalesce(jsonb_typeof(nullif(p_content -> 'overrides', 'null')), 'object') <> 'object' then
    raise exception 'overrides must be an object' using errcode = '22023';
  end if;
  select k into bad from jsonb_object_keys(coalesce(nullif(p_content -> 'overrides', 'null'), '{}')) k
  where k not in ('android', 'apns', 'webpush', 'fcm_options', 'fcmOptions', 'analytics_label',
                  'analyticsLabel', 'email')
  limit 1;
  if bad is not null then
    raise exception 'unknown overrides key % (android, apns, webpush, fcm_options, analytics_label, email)', bad
      using errcode = '22023';
  end if;
end;
$$;

-- enqueue: stores validate_only. Otherwise unchanged.
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
  perform herald.check_content(p_content, p_recipients);
  v_critical := coalesce((p_content ->> 'critical')::boolean, false);
  v_lane := case
    when p_topic is not null or cardinality(p_recipients) > 100 then 2
    when v_critical or p_content ->> 'priority' = 'high' then 0
    else 1 end;
  v_send_at := (p_content ->> 'send_at')::timestamptz;
  v_starts_at := greatest(coalesce(v_send_at, now()), now());
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
  ), created as (
    insert into herald.deliveries
      (notification_id, recipient_id, channel, device_token_id, webhook_endpoint_id, target,
       platform, next_attempt_at, lane)
    select n.id, w.user_id, w.channel, w.device_token_id, w.webhook_endpoint_id, w.target,
      w.platform, w.due_at, v_lane
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
