-- Releases and the dispatcher's canary share (issue 14). Expand only: the
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
