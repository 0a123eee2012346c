-- Dead letters (deliveries whose attempts ran out) for the service role to
-- list and replay, and the token-hygiene job.

create index deliveries_dead_idx on herald.deliveries (updated_at desc) where status = 'dead';

-- The dead-letter queue: what ran out of attempts, and why.
create view herald.dead_letters with (security_invoker = true) as
  select d.id, d.notification_id, d.recipient_id, d.channel, d.target, d.attempts,
    d.last_error, d.created_at, d.updated_at as died_at
  from herald.deliveries d
  where d.status = 'dead';

comment on view herald.dead_letters is 'Deliveries that exhausted their attempts. Service role only.';

revoke all on herald.dead_letters from public, anon, authenticated;
grant select on herald.dead_letters to service_role;

-- Makes dead deliveries due again with a fresh attempt budget: the given ids,
-- or every dead delivery of p_notification_id, or (both null) all of them.
-- Their attempt history stays. Returns how many were replayed.
create function herald.replay_dead_letters(
  p_delivery_ids uuid[] default null,
  p_notification_id uuid default null
)
returns integer
language plpgsql volatile set search_path = ''
as $$
declare
  replayed integer;
begin
  update herald.deliveries d
  set status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = null,
      updated_at = now()
  where d.status = 'dead'
    and (p_delivery_ids is null or d.id = any (p_delivery_ids))
    and (p_notification_id is null or d.notification_id = p_notification_id);
  get diagnostics replayed = row_count;
  if replayed > 0 then
    perform pg_notify('herald_outbox', '');
  end if;
  return replayed;
end;
$$;

revoke execute on function herald.replay_dead_letters(uuid[], uuid) from public;
grant execute on function herald.replay_dead_letters(uuid[], uuid) to service_role;

-- Token hygiene, run daily: tokens unseen for 270 days are disabled as STALE
-- (FCM treats them as expired; enqueue already skips them), and tokens
-- disabled longer than p_retention are deleted. Returns (disabled, deleted).
create function herald.prune_device_tokens(p_retention interval default '30 days')
returns table (disabled integer, deleted integer)
language plpgsql volatile set search_path = ''
as $$
declare
  stale integer;
  pruned integer;
begin
  update herald.device_tokens t
  set disabled_at = now(), disabled_reason = 'STALE'
  where t.disabled_at is null and t.last_seen_at < now() - interval '270 days';
  get diagnostics stale = row_count;
  delete from herald.device_tokens t where t.disabled_at < now() - p_retention;
  get diagnostics pruned = row_count;
  return query select stale, pruned;
end;
$$;

revoke execute on function herald.prune_device_tokens(interval) from public;
grant execute on function herald.prune_device_tokens(interval) to service_role;

-- Schedules, on Supabase only: pg_cron runs the token job daily and invokes
-- the dispatch function every 5 seconds through pg_net, with its URL and the
-- secret key read from Vault at each run (secrets 'herald_dispatch_url' and
-- 'herald_dispatch_key'; see the README, "Deploying"). Where pg_cron, pg_net or
-- Vault are missing (a plain Postgres, self-hosting with the worker) nothing is
-- scheduled and the migration still applies.
--
-- pg_cron can be created only where its library is preloaded
-- (shared_preload_libraries) and only in the database named by
-- cron.database_name: its own install script raises otherwise (pg_cron--1.0.sql).
-- An installed package is not enough (Debian's postgresql-<major>-cron without
-- the preload, or a cron.database_name set before the restart that loads it),
-- and the settings that tell are unreadable to a hosted project's owner, so the
-- migration tries, and says why when it cannot.
do $schedule$
begin
  if to_regclass('cron.job') is null then
    if not exists (select 1 from pg_available_extensions where name = 'pg_cron') then
      raise notice 'pg_cron is not available: herald jobs are not scheduled';
      return;
    end if;
    begin
      create extension pg_cron;
    exception when others then
      raise notice 'pg_cron cannot be created here (%): herald jobs are not scheduled', sqlerrm;
      return;
    end;
  end if;
  perform cron.schedule('herald-prune-device-tokens', '17 3 * * *',
    'select herald.prune_device_tokens()');

  if not exists (select 1 from pg_available_extensions where name = 'pg_net')
     or not exists (select 1 from pg_namespace where nspname = 'vault') then
    raise notice 'pg_net or Vault is not available: the dispatch function is not scheduled';
    return;
  end if;
  create extension if not exists pg_net;
  perform cron.schedule('herald-dispatch', '5 seconds', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_url'),
      headers := jsonb_build_object(
        'content-type', 'application/json',
        'authorization', 'Bearer ' ||
          (select decrypted_secret from vault.decrypted_secrets where name = 'herald_dispatch_key')),
      body := '{}'::jsonb,
      timeout_milliseconds := 60000)
    where exists (select 1 from herald.deliveries
                  where status = 'pending' and next_attempt_at <= now())
  $job$);
end;
$schedule$;
