-- Correctness and security found by independent checks (issue 10): who counts
-- as the service, enqueue's limits, "now or never", webhook URLs checked on
-- every change, senders kept from their recipients' addresses, and token moves
-- audited without telling the caller a token existed.

-- Who is the service. The database role decides: request.jwt.claims can be
-- set by any session (set_config is not privileged), so a claim alone never
-- grants service powers. A session that has not switched to an API role and is
-- not one of PostgREST's roles is a direct connection (a backend, pg_cron, a
-- migration); its claims may narrow it to a user, never widen it.
create function herald.is_service() returns boolean
language sql stable set search_path = ''
as $$
  select case
    when current_setting('role') = 'service_role' then true
    when current_setting('role') in ('anon', 'authenticated') then false
    when session_user::text in ('anon', 'authenticated', 'authenticator') then false
    else coalesce(nullif(auth.role(), ''), 'service_role') = 'service_role'
  end
$$;

revoke execute on function herald.is_service() from public;
grant execute on function herald.is_service() to anon, authenticated, service_role;

-- ttl_seconds 0: FCM's "now or never". One attempt when due, however late it
-- is claimed, and no retry; the FCM message carries TTL 0.
alter table herald.notifications add column now_or_never boolean not null default false;

-- The limits the notify API applies, for callers of herald.enqueue through
-- PostgREST or SQL: the same content must be refused the same way on both paths.
create function herald.check_content(p_content jsonb, p_recipients uuid[])
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
                  'priority', 'critical', 'ttl_seconds', 'send_at', 'targets')
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

revoke execute on function herald.check_content(jsonb, uuid[]) from public;

-- Priority lanes: 0 critical or high priority, 1 normal, 2 fan-out (a topic
-- audience or more than 100 recipients, whatever its priority). A dispatcher
-- claims lane by lane with a share kept for fan-out (see claimDue), so a
-- single urgent notification never waits behind 100,000 bulk deliveries and
-- bulk still drains. The due index is split by lane: each pending row is in
-- exactly one of the two (a fan-out row never enters the urgent one, an
-- urgent row never the fan-out one), so lanes cost inserts nothing extra.
-- Whoever asks "is anything due" asks both (readiness, the pg_cron check).
alter table herald.deliveries add column lane smallint not null default 1
  check (lane between 0 and 2);
drop index herald.deliveries_due_idx;
create index deliveries_urgent_due_idx on herald.deliveries (lane, next_attempt_at)
  where status = 'pending' and lane < 2;
create index deliveries_fan_out_due_idx on herald.deliveries (next_attempt_at)
  where status = 'pending' and lane = 2;

-- Whether any delivery is due, through the two due indexes.
create function herald.work_is_due() returns boolean
language sql stable set search_path = ''
as $$
  select exists (select 1 from herald.deliveries
                 where status = 'pending' and lane = 0 and next_attempt_at <= now())
      or exists (select 1 from herald.deliveries
                 where status = 'pending' and lane = 1 and next_attempt_at <= now())
      or exists (select 1 from herald.deliveries
                 where status = 'pending' and lane = 2 and next_attempt_at <= now())
$$;

revoke execute on function herald.work_is_due() from public;
grant execute on function herald.work_is_due() to service_role;

-- The dispatch schedule asks herald.work_is_due() (the old check read the
-- single due index this migration splits). Only where it was scheduled.
do $schedule$
begin
  -- Two statements: PL/pgSQL plans each when it runs, and cron.job may not exist.
  if to_regclass('cron.job') is null then
    return;
  end if;
  if not exists (select 1 from cron.job where jobname = 'herald-dispatch') then
    return;
  end if;
  perform cron.schedule('herald-dispatch', '5 seconds', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_url'),
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

-- Deleting a device token (the owner, a move, prune_device_tokens) sets its
-- deliveries' device_token_id to null; without an index every deleted token
-- scanned the whole outbox (deleting 100,000 users took over ten minutes).
create index deliveries_device_token_id_idx on herald.deliveries (device_token_id)
  where device_token_id is not null;

-- enqueue: the service decided by role, the API's limits, overrides.email for the
-- service only, and ttl_seconds 0 kept as now-or-never. Otherwise unchanged.
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
       expires_at, now_or_never, request_id, audience)
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


-- Webhook endpoints, secret rotation and cancelling decide "service" by role too.
create or replace function herald.create_webhook_endpoint(p_url text, p_owner uuid default null)
returns herald.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
  owner uuid := case when herald.is_service() then p_owner else auth.uid() end;
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

-- Replaces an endpoint's secret; the old one keeps signing for p_overlap, at
-- most 7 days: a leaked secret must not stay valid for long after a rotation.
create or replace function herald.rotate_webhook_secret(
  p_endpoint_id uuid,
  p_overlap interval default '24 hours'
)
returns herald.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
  rotated herald.webhook_endpoints;
begin
  if p_overlap is null or p_overlap < interval '0' or p_overlap > interval '7 days' then
    raise exception 'the overlap must be between 0 and 7 days, got %', p_overlap
      using errcode = '22023';
  end if;
  update herald.webhook_endpoints e
  set previous_secret = e.secret,
      previous_secret_expires_at = now() + p_overlap,
      secret = herald.new_webhook_secret()
  where e.id = p_endpoint_id
    and (herald.is_service() or e.owner_id = auth.uid())
  returning * into rotated;
  if not found then
    raise exception 'no webhook endpoint % of yours', p_endpoint_id using errcode = 'P0002';
  end if;
  return rotated;
end;
$$;

create or replace function herald.cancel_notification(p_notification_id uuid)
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
      and (herald.is_service() or (n.sender_id is not null and n.sender_id = auth.uid()))
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

-- Why a webhook URL may not be registered, or null: the scheme, credentials,
-- and literal hosts that are never public (loopback, private, link-local,
-- reserved names, non-canonical IPv4 spellings a URL parser would turn into
-- one of those). Names are resolved only when sending, by the send-time guard.
-- Hosts listed in the herald.webhook_allow_hosts setting (host or host:port,
-- as HERALD_WEBHOOK_ALLOW_HOSTS) pass; the local stack lists its receiver.
create function herald.webhook_url_problem(p_url text) returns text
language plpgsql stable set search_path = ''
as $$
declare
  authority text := substring(p_url from '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)');
  host text;
  port text;
  allowed text[] := string_to_array(
    replace(coalesce(current_setting('herald.webhook_allow_hosts', true), ''), ' ', ''), ',');
  address inet;
begin
  if p_url !~* '^https?://' then return 'the scheme must be http or https'; end if;
  if coalesce(authority, '') = '' then return 'the URL has no host'; end if;
  if position('@' in authority) > 0 then return 'the URL carries credentials'; end if;
  host := rtrim(lower(coalesce(substring(authority from '^\[([^\]]*)\]'),
                               substring(authority from '^([^:]*)'))), '.');
  port := coalesce(ltrim(substring(authority from ':(\d+)$'), '0'),
                   case when p_url ~* '^https' then '443' else '80' end);
  if host = any (allowed)
     or (case when host like '%:%' then '[' || host || ']' else host end) || ':' || port = any (allowed)
  then
    return null;
  end if;
  if host = '' then return 'the URL has no host'; end if;
  if host = 'localhost' or host like '%.localhost' then return host || ' is a loopback name'; end if;
  if host ~ '(^|\.)(internal|local|home\.arpa)$' or host ~ '^metadata\.goog' then
    return host || ' is a private-use name';
  end if;
  if host !~ '[.:]' then
    return host || ' is a single-label name, resolved only inside a private network';
  end if;
  -- A last label that is a number makes a URL parser read the host as IPv4
  -- (127.1, 2130706433, 0x7f.1): only the canonical dotted quad is accepted.
  if host !~ ':' and split_part(host, '.', -1) ~* '^(0x[0-9a-f]*|[0-9]+)$'
     and host !~ '^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$' then
    return host || ' is not a canonical IPv4 address';
  end if;
  begin
    address := host::inet;
  exception when others then
    if host ~ ':' then return host || ' is not a valid IPv6 address'; end if;
    if host ~ '^[0-9.]+$' then return host || ' is not a valid IPv4 address'; end if;
    return null; -- a name
  end;
  if family(address) = 4 and address <<= any (array[
      '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
      '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24',
      '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4']::inet[]) then
    return host || ' is not a public address';
  end if;
  -- IPv6: global unicast only, without documentation or 6to4 (which embeds any IPv4).
  if family(address) = 6 and (not address <<= '2000::/3'::inet
      or address <<= any (array['2001:db8::/32', '2002::/16']::inet[])) then
    return host || ' is not a public address';
  end if;
  return null;
end;
$$;

grant execute on function herald.webhook_url_problem(text) to authenticated, service_role;

-- Every insert and every change of url, whoever makes it (the API, PostgREST,
-- SQL). Re-pointing an endpoint re-enables it: that is how an owner fixes one
-- that was refused or gone.
create function herald.check_webhook_endpoint() returns trigger
language plpgsql set search_path = ''
as $$
declare
  problem text := herald.webhook_url_problem(new.url);
begin
  if problem is not null then
    raise exception 'webhook URL refused: %', problem using errcode = '22023';
  end if;
  if tg_op = 'UPDATE' and new.url is distinct from old.url then
    new.disabled_at := null;
    new.disabled_reason := null;
  end if;
  return new;
end;
$$;

create trigger webhook_endpoints_check_url
  before insert or update of url on herald.webhook_endpoints
  for each row execute function herald.check_webhook_endpoint();

-- Senders read their notifications' deliveries (status, attempts, errors) but
-- never the addresses: a project that widens herald.can_notify must not hand
-- its users each other's FCM tokens, e-mail addresses or webhook URLs.
-- Recipients read their own through herald.my_delivery_targets.
revoke select on herald.deliveries from authenticated;
grant select (id, notification_id, recipient_id, channel, device_token_id, webhook_endpoint_id,
  platform, status, attempts, next_attempt_at, locked_until, last_error, provider_message_id,
  created_at, updated_at, sent_at) on herald.deliveries to authenticated;

create view herald.my_delivery_targets with (security_barrier) as
  select d.id as delivery_id, d.channel, d.target
  from herald.deliveries d
  where d.recipient_id = (select auth.uid());

comment on view herald.my_delivery_targets is
  'The caller''s own delivery addresses (deliveries.target is not readable by users).';

revoke all on herald.my_delivery_targets from public, anon;
grant select on herald.my_delivery_targets to authenticated, service_role;

-- A token registered again by another user moves to them (the device changed
-- hands). The answer must not tell the caller that the token was known, so the
-- old row goes and a new one is made, exactly as for a new token; the move is
-- written here for the service role, with the token hashed.
create table herald.device_token_moves (
  id bigint generated always as identity primary key,
  token_sha256 text not null,
  from_user_id uuid,
  to_user_id uuid not null,
  platform text not null,
  cancelled_deliveries integer not null,
  moved_at timestamptz not null default now()
);

comment on table herald.device_token_moves is
  'Audit trail of device tokens registered by another user. Service role only.';

alter table herald.device_token_moves enable row level security;
revoke all on herald.device_token_moves from public, anon, authenticated;
grant select on herald.device_token_moves to service_role;

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
    -- The previous owner's pending pushes must not reach the device's new holder.
    update herald.deliveries d
    set status = 'cancelled', last_error = 'the device was registered by another user',
      locked_until = null, updated_at = now()
    where d.device_token_id = previous.id and d.status = 'pending'
      and (d.locked_until is null or d.locked_until < now());
    get diagnostics cancelled = row_count;
    insert into herald.device_token_moves
      (token_sha256, from_user_id, to_user_id, platform, cancelled_deliveries)
    values (encode(extensions.digest(p_token, 'sha256'), 'hex'), previous.user_id, caller,
      p_platform, cancelled);
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

-- Hook rule templates may carry overrides (copied as given; the dispatcher
-- validates them against FCM's schema before sending).
alter table herald.hook_rules add constraint hook_rules_template_overrides_check check (
  case jsonb_typeof(template -> 'overrides')
    when 'object' then not jsonb_path_exists(template,
      '$.overrides.keyvalue() ? (!(@.key == "android" || @.key == "apns" || @.key == "webpush" || @.key == "fcm_options" || @.key == "fcmOptions" || @.key == "analytics_label" || @.key == "analyticsLabel" || @.key == "email"))')
    else template -> 'overrides' is null
  end
);
