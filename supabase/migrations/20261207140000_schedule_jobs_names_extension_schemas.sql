-- herald.schedule_jobs() created pg_cron and pg_net without naming a
-- schema. Under its `search_path = ''` that fails ("no schema has been
-- selected to create in") before either extension can say what is really
-- wrong, e.g. pg_cron's "can only create extension in database postgres"
-- when Herald's database is not cron.database_name; and a failing pg_net
-- took the whole call (and the migration) down. Both are now created in the
-- schemas Supabase documents (pg_cron in pg_catalog, pg_net in extensions),
-- and a failure of either is a row's note, like every other reason.
-- Otherwise unchanged.
create or replace function herald.schedule_jobs()
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
        -- Named, as Supabase documents it: under search_path = '' an
        -- unnamed schema fails before pg_cron can give its own reason.
        create extension pg_cron with schema pg_catalog;
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

  if pg_catalog.to_regnamespace('net') is null then
    if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_net') then
      missing := 'pg_net is not installed';
    else
      begin
        create extension pg_net with schema extensions;
      exception when others then
        missing := 'pg_net cannot be created here (' || sqlerrm || ')';
      end;
    end if;
  end if;
  if missing is null and pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    missing := 'Vault is not installed';
  elsif missing is null then
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
