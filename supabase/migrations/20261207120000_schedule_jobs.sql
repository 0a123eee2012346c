-- Every Herald job, in its newest form, from one idempotent procedure:
-- `select * from herald.schedule_jobs();` after the migrations, and again
-- whenever something it needs arrives (pg_cron enabled, pg_net, the Vault
-- secrets). Before this, the jobs lived in five migrations' schedule blocks,
-- and re-running the first one (as the README said) installed a dispatch job
-- that ignored the canary share.
--
-- What it needs, and where:
-- - pg_cron, preloaded, in its cron.database_name (hosted Supabase; locally
--   `npm start` preloads Debian's package). It creates the extension if it can.
-- - for the dispatch job also pg_net and Vault holding 'herald_dispatch_url'
--   and 'herald_dispatch_key' (README, "Deploying"); without them the job is
--   not installed, and one already there is removed.
-- pg_cron before 1.5 has no seconds schedules: the dispatch job then runs
-- every minute, and says so.
--
-- Returns one row per job: whether it is scheduled, and if not, why.
create function herald.schedule_jobs()
returns table (job text, schedule text, scheduled boolean, note text)
language plpgsql set search_path = ''
as $$
declare
  upkeep constant text[][] := array[
    ['herald-prune-device-tokens', '17 3 * * *', 'select herald.prune_device_tokens()'],
    ['herald-prune-hook-events', '41 3 * * *', 'select herald.prune_hook_events()'],
    ['herald-prune-idempotency-keys', '23 * * * *', 'select herald.prune_idempotency_keys()'],
    ['herald-prune-device-token-moves', '29 3 * * *', 'select herald.prune_device_token_moves()']
  ];
  dispatch_command constant text := $job$
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
  $job$;
  missing text;
  found_secrets integer;
begin
  -- cron and vault may not exist where this is created or linted
  -- (plpgsql_check plans even a constant EXECUTE): their names go in by format().
  if pg_catalog.to_regclass('cron.job') is null then
    if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron') then
      missing := 'pg_cron is not available';
    else
      begin
        create extension pg_cron;
      exception when others then
        missing := 'pg_cron cannot be created here (' || sqlerrm || ')';
      end;
    end if;
  end if;
  if missing is not null then
    raise notice '%: no Herald job is scheduled; call the herald.prune_* functions from your own scheduler', missing;
    for i in 1 .. array_length(upkeep, 1) loop
      return query select upkeep[i][1], upkeep[i][2], false, missing;
    end loop;
    return query select 'herald-dispatch'::text, null::text, false, missing;
    return;
  end if;

  for i in 1 .. array_length(upkeep, 1) loop
    execute format('select %I.schedule($1, $2, $3)', 'cron')
      using upkeep[i][1], upkeep[i][2], upkeep[i][3];
    return query select upkeep[i][1], upkeep[i][2], true, null::text;
  end loop;

  if pg_catalog.to_regnamespace('net') is null
     and exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_net') then
    create extension pg_net;
  end if;
  if pg_catalog.to_regnamespace('net') is null then
    missing := 'pg_net is not installed';
  elsif pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    missing := 'Vault is not installed';
  else
    execute format($q$select count(distinct name)::integer from %I.decrypted_secrets
      where name in ('herald_dispatch_url', 'herald_dispatch_key')
        and coalesce(decrypted_secret, '') <> ''$q$, 'vault') into found_secrets;
    if found_secrets < 2 then
      missing := 'Vault lacks herald_dispatch_url or herald_dispatch_key: create both, then '
        || 'select * from herald.schedule_jobs()';
    end if;
  end if;
  if missing is not null then
    -- An old one would post to nowhere every 5 s.
    execute format($q$select %1$I.unschedule(jobid) from %1$I.job where jobname = 'herald-dispatch'$q$,
      'cron');
    raise notice 'the dispatch job is not scheduled: %', missing;
    return query select 'herald-dispatch'::text, null::text, false, missing;
    return;
  end if;
  -- Seconds schedules came with pg_cron 1.5.
  if (select string_to_array(split_part(extversion, '-', 1), '.')::int[] >= array[1, 5]
      from pg_catalog.pg_extension where extname = 'pg_cron') then
    execute format($q$select %I.schedule('herald-dispatch', '5 seconds', $1)$q$, 'cron')
      using dispatch_command;
    return query select 'herald-dispatch'::text, '5 seconds'::text, true, null::text;
  else
    execute format($q$select %I.schedule('herald-dispatch', '* * * * *', $1)$q$, 'cron')
      using dispatch_command;
    raise notice 'pg_cron before 1.5 has no seconds schedules: dispatch runs every minute';
    return query select 'herald-dispatch'::text, '* * * * *'::text, true,
      'pg_cron before 1.5 has no seconds schedules: every minute'::text;
  end if;
end;
$$;
revoke all on function herald.schedule_jobs() from public, anon, authenticated, service_role;

select * from herald.schedule_jobs();
