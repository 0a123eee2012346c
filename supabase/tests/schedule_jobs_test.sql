-- herald.schedule_jobs(): every job in its newest form, idempotent, and the
-- dispatch job only with pg_net and both Vault secrets. pg_net and Vault are
-- not installable here: their objects are stood in for inside this
-- transaction (the signature of net.http_post and the vault.decrypted_secrets
-- view the job reads), and rolled back.
begin;
select plan(14);

select results_eq(
  $$select job, scheduled from herald.schedule_jobs() order by job$$,
  $$values ('herald-dispatch', false), ('herald-maintain-outbox', true),
           ('herald-prune-device-token-moves', true),
           ('herald-prune-device-tokens', true), ('herald-prune-hook-events', true),
           ('herald-prune-idempotency-keys', true)$$,
  'without pg_net every upkeep job is scheduled, the dispatch job is not');
select is((select note from herald.schedule_jobs() where job = 'herald-dispatch'),
  'pg_net is not installed', 'and it says why');
select is((select count(*)::integer from cron.job where jobname like 'herald-%'), 5,
  'called twice, still one job each');

-- Stand-ins for pg_net's function and Vault's view.
create schema net;
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
  headers jsonb default '{}', timeout_milliseconds integer default 5000)
returns bigint language sql as $$ select 1::bigint $$;
create schema vault;
create table vault.secrets_stand_in (name text, decrypted_secret text);
create view vault.decrypted_secrets as select name, decrypted_secret from vault.secrets_stand_in;
-- Supabase Vault's signature, so the README's statements run here as written.
create function vault.create_secret(new_secret text, new_name text default null,
  new_description text default '', new_key_id uuid default null)
returns uuid language sql as $$
  insert into vault.secrets_stand_in values (new_name, new_secret);
  select gen_random_uuid() $$;

select matches((select note from herald.schedule_jobs() where job = 'herald-dispatch'),
  'herald_dispatch_url or herald_dispatch_key', 'Vault without the secrets: not scheduled, and why');

-- What the first migration left behind: the old dispatch job, blind to the canary share.
select cron.schedule('herald-dispatch', '* * * * *', 'select 1 /* old */');
select is((select scheduled from herald.schedule_jobs() where job = 'herald-dispatch'), false,
  'an old job without the secrets is not kept');
select is((select count(*)::integer from cron.job where jobname = 'herald-dispatch'), 0,
  'it is removed: it would post to nowhere');

select cron.schedule('herald-dispatch', '* * * * *', 'select 1 /* old */');
-- The README's block, as written (tests/readme_test.ts holds the two to each other).
select vault.create_secret('https://example.supabase.co/functions/v1/dispatch', 'herald_dispatch_url');
select vault.create_secret('sb_secret_stand_in', 'herald_dispatch_key');
select * from herald.schedule_jobs();
select is((select scheduled from herald.schedule_jobs() where job = 'herald-dispatch'), true,
  'with pg_net and both secrets the dispatch job is scheduled');
select is((select count(*)::integer from cron.job where jobname = 'herald-dispatch'), 1,
  'once');
select matches((select command from cron.job where jobname = 'herald-dispatch'),
  'herald\.dispatch_url\(', 'in its newest form: through the canary share');
select matches((select command from cron.job where jobname = 'herald-dispatch'),
  'herald\.work_is_due\(\)', 'and only when work is due');
select is((select schedule from cron.job where jobname = 'herald-dispatch'),
  case when (select extversion from pg_extension where extname = 'pg_cron') >= '1.5'
    then '5 seconds' else '* * * * *' end,
  'every 5 seconds (every minute before pg_cron 1.5)');
-- The job's command runs: the secrets are read, the URL goes through the canary share.
select lives_ok((select command from cron.job where jobname = 'herald-dispatch'),
  'the scheduled command runs');

-- pg_cron preloaded but not created (enabled after the migrations ran): the
-- procedure creates it, despite its own empty search_path, and schedules all.
drop extension pg_cron;
select is((select count(*)::integer from herald.schedule_jobs() where scheduled), 6,
  'pg_cron created by the procedure: every job scheduled');
select is((select extnamespace::regnamespace::text from pg_extension where extname = 'pg_cron'),
  'pg_catalog', 'in the schema Supabase documents');

select * from finish();
rollback;
