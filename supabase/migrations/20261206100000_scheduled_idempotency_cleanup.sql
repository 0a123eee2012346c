-- Idempotency keys are kept for a day (herald.prune_idempotency_keys, in the
-- public-API migration), but nothing ran the cleanup: schedule it hourly where
-- pg_cron runs (the dead-letters migration created it where it can: preloaded,
-- in cron.database_name). Elsewhere call herald.prune_idempotency_keys() from
-- your own scheduler (README, "Deploying").
do $schedule$
begin
  if to_regclass('cron.job') is null then
    raise notice 'pg_cron is not installed: herald.prune_idempotency_keys is not scheduled';
    return;
  end if;
  perform cron.schedule('herald-prune-idempotency-keys', '23 * * * *',
    'select herald.prune_idempotency_keys()');
end;
$schedule$;
