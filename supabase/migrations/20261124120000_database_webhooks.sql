-- Database events in, notifications out: rules that map a row event to a
-- notification, the log that de-duplicates events by their webhook-id, and a
-- trigger function that posts events signed per Standard Webhooks through
-- pg_net to the hooks function.

-- One rule: "when this event on this table matches this condition, notify
-- these people with this content". The hooks function renders the template's
-- strings ({{record.user_id}}, {{old_record.status}}, {{table}}, …) in
-- TypeScript; the checks below keep a malformed template out of the table, so
-- a rule never fails at the moment an event arrives.
create table herald.hook_rules (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (length(name) between 1 and 200),
  schema_name text not null default 'public' check (length(schema_name) between 1 and 63),
  table_name text not null check (length(table_name) between 1 and 63),
  event text not null check (event in ('INSERT', 'UPDATE', 'DELETE')),
  -- The rule matches when the event payload {type, table, schema, record,
  -- old_record} contains this (payload @> condition); {} matches every event.
  condition jsonb not null default '{}' check (jsonb_typeof(condition) = 'object'),
  template jsonb not null check (
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
    and coalesce(template -> 'channels' <@ '["push", "email", "webhook"]', true)
    and coalesce(template ->> 'priority', 'normal') in ('normal', 'high')
    and coalesce(jsonb_typeof(template -> 'critical'), 'boolean') = 'boolean'
    -- A CASE, because AND does not promise to skip the cast for a non-number.
    and case jsonb_typeof(template -> 'ttl_seconds')
      when 'number' then (template ->> 'ttl_seconds')::numeric between 0 and 2419200
      else template -> 'ttl_seconds' is null end
  ),
  enabled boolean not null default true,
  created_at timestamptz not null default now()
);

comment on table herald.hook_rules is
  'Rules turning database events into notifications. Service role only: rules decide who gets notified of what.';

create index hook_rules_event_idx on herald.hook_rules (schema_name, table_name, event) where enabled;

-- Every event the hooks function accepted, keyed by its webhook-id. The insert
-- happens in the same transaction as the notifications it creates, so a
-- retried event is either a duplicate (it was fully processed) or processed
-- anew (the first attempt rolled back).
create table herald.hook_events (
  id text primary key check (length(id) between 1 and 256),
  received_at timestamptz not null default now(),
  rule_count integer,
  notification_ids uuid[]
);

comment on table herald.hook_events is
  'Database events received by the hooks function, for de-duplication by webhook-id. Service role only.';

create index hook_events_received_at_idx on herald.hook_events (received_at);

-- RLS on and no policy: authenticated and anon get no grants on either table,
-- so they are refused before RLS is even consulted; service_role bypasses RLS.
-- RLS stays on so that a grant added by mistake still exposes no row.
alter table herald.hook_rules enable row level security;
alter table herald.hook_events enable row level security;

revoke all on herald.hook_rules, herald.hook_events from public, anon, authenticated;
grant all on herald.hook_rules, herald.hook_events to service_role;

-- Forgets events received more than p_keep ago; run daily. The window must
-- outlast the sender's retries of one event: pg_net never retries, and a
-- replay older than the 5-minute timestamp tolerance is refused before it is
-- looked up. Returns how many rows were deleted.
create function herald.prune_hook_events(p_keep interval default '7 days')
returns integer
language plpgsql volatile set search_path = ''
as $$
declare
  pruned integer;
begin
  delete from herald.hook_events e where e.received_at < now() - p_keep;
  get diagnostics pruned = row_count;
  return pruned;
end;
$$;

revoke execute on function herald.prune_hook_events(interval) from public;
grant execute on function herald.prune_hook_events(interval) to service_role;

-- The webhook-signature of one message per Standard Webhooks:
-- 'v1,' || base64(HMAC-SHA256(key, id || '.' || timestamp || '.' || body)),
-- where the key is the base64 after 'whsec_'. The body must be the exact text
-- sent; for pg_net that is body::text of the jsonb it is given.
create function herald.sign_standard_webhook(
  p_secret text,
  p_id text,
  p_timestamp bigint,
  p_body text
)
returns text
language sql immutable strict set search_path = ''
as $$
  -- encode(…, 'base64') wraps lines at 76 characters; a signature is one line.
  select 'v1,' || translate(encode(extensions.hmac(
    convert_to(p_id || '.' || p_timestamp::text || '.' || p_body, 'UTF8'),
    decode(regexp_replace(p_secret, '^whsec_', ''), 'base64'),
    'sha256'), 'base64'), E'\n', '')
$$;

revoke execute on function herald.sign_standard_webhook(text, text, bigint, text) from public;
grant execute on function herald.sign_standard_webhook(text, text, bigint, text) to service_role;

-- A row trigger an app attaches to its own tables to send their events to the
-- hooks function, signed, with the payload Supabase's Database Webhooks send:
--
--   create trigger orders_to_herald after insert or update or delete on public.orders
--     for each row execute function herald.post_database_event();
--
-- Supabase's own Database Webhooks cannot sign a request (their headers are
-- fixed strings), which is why this exists. It reads the function URL and the
-- whsec_ secret from Vault ('herald_hooks_url', 'herald_hooks_secret').
--
-- The path is lossy: pg_net queues the request inside the transaction (so a
-- rolled-back change sends nothing) and sends it after commit, once, without
-- retrying; a request that fails or times out is only recorded in
-- net._http_response. The timestamp is taken when the row changes, so a
-- transaction open for more than 5 minutes sends a request the function
-- refuses as stale. The lossless path is a trigger that calls
-- herald.enqueue(recipients, content, request_id) in the same transaction
-- (see supabase/functions/hooks/README.md).
--
-- Without pg_net, Vault or the two secrets (a plain Postgres, a project not
-- set up yet) it raises a WARNING naming what is missing and sends nothing:
-- the app's write must not fail because notifications are not configured.
-- Security definer because Vault's secrets are not readable by the roles the
-- app writes as; execute is revoked from public, so only the owner (and
-- superusers) may attach it to a table.
create function herald.post_database_event()
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
  if hooks_secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' then
    raise warning 'herald.post_database_event: Vault secret ''herald_hooks_secret'' is not whsec_ followed by base64; % on %.% not sent',
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

revoke execute on function herald.post_database_event() from public;

-- Prunes the event log daily where pg_cron is installed (on Supabase, by the
-- dead-letters migration); elsewhere run herald.prune_hook_events() yourself.
do $schedule$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: herald.prune_hook_events is not scheduled';
    return;
  end if;
  perform cron.schedule('herald-prune-hook-events', '41 3 * * *',
    'select herald.prune_hook_events()');
end;
$schedule$;
