-- One list of channels in SQL, and Standard Webhooks' secret rule in one place.
--
-- herald.channel_names() is the channels Herald delivers on; the TypeScript
-- list is CHANNELS in supabase/functions/_shared/channels.ts, and a test holds
-- the two equal. Adding a channel redefines this function (and the target
-- checks in herald.enqueue that are the channel's own); the CHECKs on
-- deliveries, opt_outs and hook rules' templates and enqueue's channel check
-- follow it.
create function herald.channel_names()
returns text[]
language sql immutable parallel safe set search_path = ''
as $$ select array['push', 'email', 'webhook'] $$;

comment on function herald.channel_names() is
  'The channels Herald delivers on; the one list the CHECKs and herald.enqueue refer to.';

-- Swapped without a long lock: NOT VALID takes effect for new rows at once,
-- VALIDATE scans the old ones under a lock that lets writes through.
alter table herald.deliveries drop constraint deliveries_channel_check;
alter table herald.deliveries add constraint deliveries_channel_check
  check (channel = any (herald.channel_names())) not valid;
alter table herald.deliveries validate constraint deliveries_channel_check;
alter table herald.opt_outs drop constraint opt_outs_channel_check;
alter table herald.opt_outs add constraint opt_outs_channel_check
  check (channel = any (herald.channel_names())) not valid;
alter table herald.opt_outs validate constraint opt_outs_channel_check;
-- A hook rule's template may name only channels herald.enqueue knows. The
-- check is the one the database-webhooks migration made, with the channel
-- list read from herald.channel_names().
alter table herald.hook_rules drop constraint hook_rules_template_check;
alter table herald.hook_rules add constraint hook_rules_template_check check (
    jsonb_typeof(template) = 'object'
    -- IS NOT DISTINCT FROM: a missing key must fail the check, not make it null (and pass).
    and jsonb_typeof(template -> 'recipients') is not distinct from 'array'
    and not jsonb_path_exists(template, '$.recipients[*] ? (@.type() != "string")')
    and coalesce(jsonb_typeof(template -> 'title'), 'string') = 'string'
    and coalesce(jsonb_typeof(template -> 'body'), 'string') = 'string'
    and coalesce(jsonb_typeof(template -> 'image'), 'string') = 'string'
    and coalesce(jsonb_typeof(template -> 'category'), 'string') = 'string'
    and coalesce(jsonb_typeof(template -> 'data'), 'object') = 'object'
    and not jsonb_path_exists(template, '$.data.* ? (@.type() != "string")')
    -- The channels herald.enqueue knows; an unknown one would fail every event.
    and coalesce(jsonb_typeof(template -> 'channels'), 'array') = 'array'
    and coalesce(template -> 'channels' <@ to_jsonb(herald.channel_names()), true)
    and coalesce(template ->> 'priority', 'normal') in ('normal', 'high')
    and coalesce(jsonb_typeof(template -> 'critical'), 'boolean') = 'boolean'
    -- A CASE, because AND does not promise to skip the cast for a non-number.
    and case jsonb_typeof(template -> 'ttl_seconds')
      when 'number' then (template ->> 'ttl_seconds')::numeric between 0 and 2419200
      else template -> 'ttl_seconds' is null end
) not valid;
alter table herald.hook_rules validate constraint hook_rules_template_check;

-- The key of a Standard Webhooks secret, or null when it is not one: base64 of
-- at least one byte, optionally after 'whsec_' (the spec's prefix). The rule
-- is the TypeScript secretKey()'s (_shared/webhooks/standard_webhooks.ts), so
-- a secret the hooks function accepts is one the database signs with, and
-- the other way round.
create function herald.standard_webhook_key(p_secret text)
returns bytea
language plpgsql immutable strict parallel safe set search_path = ''
as $$
declare
  v_base64 text := regexp_replace(p_secret, '^whsec_', '');
begin
  -- Read as atob() reads it (WHATWG forgiving-base64): padding only on a
  -- multiple of four characters, none needed otherwise.
  if length(v_base64) % 4 = 0 then
    v_base64 := regexp_replace(v_base64, '={1,2}$', '');
  end if;
  if v_base64 !~ '^[A-Za-z0-9+/]+$' or length(v_base64) % 4 = 1 then
    return null;
  end if;
  return decode(v_base64 || repeat('=', (4 - length(v_base64) % 4) % 4), 'base64');
end;
$$;

revoke execute on function herald.standard_webhook_key(text) from public;

-- sign_standard_webhook: the key from herald.standard_webhook_key; a secret
-- that is not one raises instead of signing with garbage. Otherwise unchanged.
create or replace function herald.sign_standard_webhook(
  p_secret text,
  p_id text,
  p_timestamp bigint,
  p_body text
)
returns text
language plpgsql immutable strict set search_path = ''
as $$
declare
  v_key bytea := herald.standard_webhook_key(p_secret);
begin
  if v_key is null then
    raise exception 'a Standard Webhooks secret is base64, optionally after whsec_'
      using errcode = '22023';
  end if;
  -- encode(…, 'base64') wraps lines at 76 characters; a signature is one line.
  return 'v1,' || translate(encode(extensions.hmac(
    convert_to(p_id || '.' || p_timestamp::text || '.' || p_body, 'UTF8'),
    v_key, 'sha256'), 'base64'), E'\n', '');
end;
$$;

-- post_database_event: accepts a secret by herald.standard_webhook_key's rule,
-- as the hooks function does (it used to insist on the whsec_ prefix). Otherwise unchanged.
create or replace function herald.post_database_event()
returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
  hooks_url text;
  hooks_secret text;
  payload jsonb;
  event_id text;
  sent_at bigint;
begin
  if tg_level <> 'ROW' then
    raise exception 'herald.post_database_event must be attached FOR EACH ROW, not % on %.%',
      tg_level, tg_table_schema, tg_table_name;
  end if;
  if not exists (select 1 from pg_catalog.pg_proc p
                 join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'net' and p.proname = 'http_post') then
    raise warning 'herald.post_database_event: pg_net is not installed (no net.http_post); % on %.% not sent',
      tg_op, tg_table_schema, tg_table_name;
    return null;
  end if;
  if pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    raise warning 'herald.post_database_event: Vault is not installed (no vault.decrypted_secrets); % on %.% not sent',
      tg_op, tg_table_schema, tg_table_name;
    return null;
  end if;

  -- PL/pgSQL plans a statement when it first runs, so the references to vault
  -- and net below need both only once the checks above have passed.
  select s.decrypted_secret into hooks_url from vault.decrypted_secrets s where s.name = 'herald_hooks_url';
  select s.decrypted_secret into hooks_secret from vault.decrypted_secrets s where s.name = 'herald_hooks_secret';
  if hooks_url is null or hooks_secret is null then
    raise warning 'herald.post_database_event: Vault secret % is missing; % on %.% not sent',
      case when hooks_url is null then '''herald_hooks_url''' else '''herald_hooks_secret''' end,
      tg_op, tg_table_schema, tg_table_name;
    return null;
  end if;
  if herald.standard_webhook_key(hooks_secret) is null then
    raise warning 'herald.post_database_event: Vault secret ''herald_hooks_secret'' is not base64 (optionally after whsec_); % on %.% not sent',
      tg_op, tg_table_schema, tg_table_name;
    return null;
  end if;

  payload := pg_catalog.jsonb_build_object(
    'type', tg_op,
    'table', tg_table_name,
    'schema', tg_table_schema,
    'record', case when tg_op = 'DELETE' then null else pg_catalog.to_jsonb(new) end,
    'old_record', case when tg_op = 'INSERT' then null else pg_catalog.to_jsonb(old) end);
  event_id := 'msg_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
  sent_at := pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()))::bigint;

  -- pg_net sends convert_to(body::text, 'UTF8'), so signing payload::text signs
  -- the very bytes the function receives.
  perform net.http_post(
    url := hooks_url,
    body := payload,
    headers := pg_catalog.jsonb_build_object(
      'content-type', 'application/json',
      'webhook-id', event_id,
      'webhook-timestamp', sent_at::text,
      'webhook-signature', herald.sign_standard_webhook(hooks_secret, event_id, sent_at, payload::text)),
    timeout_milliseconds := 5000);
  return null;
end;
$$;

-- enqueue: the channels it accepts are herald.channel_names(). Otherwise unchanged.
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
