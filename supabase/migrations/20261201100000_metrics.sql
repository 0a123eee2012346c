-- Metrics that survive ephemeral isolates (issue 13). Counters live in
-- Postgres, incremented by the statements that change what they count: the
-- dispatcher's write-back (outcomes, attempts, latencies, token hygiene) and
-- triggers on the outbox (deliveries by status). The metrics function sums
-- them per scrape; it never scans the outbox.
--
-- Hot rows: every writer adds to its own rows, keyed by its backend pid
-- (`shard`), so concurrent dispatchers and enqueues never wait on each other's
-- counter rows. Rows of backends that have ended are folded into shard 0 by
-- herald.fold_metric_shards() (the metrics function calls it per scrape), so
-- the tables stay as small as the set of live connections.

-- Monotonic counters: deliveries by outcome, attempts by error class, targets
-- disabled by reason. `instance` is the writer's HERALD_INSTANCE (stable,
-- canary), so a canary's series can be told from the stable's.
create table herald.metric_counters (
  metric text not null,
  instance text not null default '',
  channel text not null default '',
  label text not null default '',
  shard integer not null,
  n bigint not null default 0,
  primary key (metric, instance, channel, label, shard)
);

-- Histograms: each row counts the observations of one bucket (not cumulative)
-- and their sum; bucket bounds live in the code that observes and exposes them.
create table herald.metric_histograms (
  metric text not null,
  instance text not null default '',
  channel text not null default '',
  bucket smallint not null,
  shard integer not null,
  n bigint not null default 0,
  sum double precision not null default 0,
  primary key (metric, instance, channel, bucket, shard)
);

-- Deliveries by channel, lane and status: the queue depth and dead letters
-- outstanding, exact and cheap to read, whoever changed the outbox.
create table herald.delivery_status_counts (
  channel text not null,
  lane smallint not null,
  status text not null,
  shard integer not null,
  n bigint not null default 0,
  primary key (channel, lane, status, shard)
);

alter table herald.metric_counters enable row level security;
alter table herald.metric_histograms enable row level security;
alter table herald.delivery_status_counts enable row level security;
revoke all on herald.metric_counters, herald.metric_histograms, herald.delivery_status_counts
  from public, anon, authenticated;
grant select on herald.metric_counters, herald.metric_histograms, herald.delivery_status_counts
  to service_role;

-- Adds a statement's status changes (rows leaving one status, entering
-- another) to the counts, in key order so two writers sharing a shard (a
-- reused pid) cannot deadlock. Entering `cancelled` is counted as an outcome
-- here: cancels come from the API, not from the dispatcher's write-back.
create function herald.deliveries_counted() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  cancelled boolean;
begin
  -- Each branch names only the transition tables its event has.
  if tg_op = 'INSERT' then
    insert into herald.delivery_status_counts as c (channel, lane, status, shard, n)
    select channel, lane, status, pg_backend_pid(), count(*) from new_rows
    group by 1, 2, 3 order by 1, 2, 3
    on conflict (channel, lane, status, shard) do update set n = c.n + excluded.n;
  elsif tg_op = 'DELETE' then
    insert into herald.delivery_status_counts as c (channel, lane, status, shard, n)
    select channel, lane, status, pg_backend_pid(), -count(*) from old_rows
    group by 1, 2, 3 order by 1, 2, 3
    on conflict (channel, lane, status, shard) do update set n = c.n + excluded.n;
  else
    -- One statement for the counts; the cancel join only when something was cancelled
    -- (a claim's update, which changes no status, costs one aggregate and nothing else).
    with delta as materialized (
      select channel, lane, status, sum(n) as n from (
        select channel, lane, status, count(*) as n from new_rows group by 1, 2, 3
        union all
        select channel, lane, status, -count(*) from old_rows group by 1, 2, 3
      ) d group by 1, 2, 3 having sum(n) <> 0
    ), counted as (
      insert into herald.delivery_status_counts as c (channel, lane, status, shard, n)
      select channel, lane, status, pg_backend_pid(), n from delta order by 1, 2, 3
      on conflict (channel, lane, status, shard) do update set n = c.n + excluded.n
    )
    select coalesce(bool_or(status = 'cancelled' and n > 0), false) into cancelled from delta;
    if cancelled then
      insert into herald.metric_counters as c (metric, channel, label, shard, n)
      select 'deliveries', o.channel, 'cancelled', pg_backend_pid(), count(*)
      from old_rows o join new_rows n on n.id = o.id
      where n.status = 'cancelled' and o.status <> 'cancelled'
      group by o.channel order by o.channel
      on conflict (metric, instance, channel, label, shard) do update set n = c.n + excluded.n;
    end if;
  end if;
  return null;
end;
$$;

revoke execute on function herald.deliveries_counted() from public;

-- Statement-level: one aggregate per statement (a 100,000-row fan-out adds
-- three counter rows, not 100,000 trigger calls). Postgres allows no column
-- list with transition tables, so every UPDATE fires it; one that changes no
-- status (the claim) nets to zero and writes nothing.
create trigger deliveries_counted_insert after insert on herald.deliveries
  referencing new table as new_rows for each statement execute function herald.deliveries_counted();
create trigger deliveries_counted_update after update on herald.deliveries
  referencing old table as old_rows new table as new_rows
  for each statement execute function herald.deliveries_counted();
create trigger deliveries_counted_delete after delete on herald.deliveries
  referencing old table as old_rows for each statement execute function herald.deliveries_counted();

-- What the outbox holds now, as the counts' starting point.
insert into herald.delivery_status_counts (channel, lane, status, shard, n)
select channel, lane, status, 0, count(*) from herald.deliveries group by 1, 2, 3;

-- Folds the rows of backends that have ended into shard 0, so the counter
-- tables hold one row per key and live connection. Sums are unchanged, so
-- counters stay monotonic. One folder at a time; the others skip.
create function herald.fold_metric_shards()
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  folded integer := 0;
  moved integer;
begin
  if not pg_try_advisory_xact_lock(hashtext('herald.fold_metric_shards')) then
    return 0;
  end if;
  with gone as (
    delete from herald.metric_counters c
    where c.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = c.shard)
    returning metric, instance, channel, label, n
  )
  insert into herald.metric_counters as c (metric, instance, channel, label, shard, n)
  select metric, instance, channel, label, 0, sum(n) from gone group by 1, 2, 3, 4 order by 1, 2, 3, 4
  on conflict (metric, instance, channel, label, shard) do update set n = c.n + excluded.n;
  get diagnostics moved = row_count;
  folded := folded + moved;
  with gone as (
    delete from herald.metric_histograms h
    where h.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = h.shard)
    returning metric, instance, channel, bucket, n, sum
  )
  insert into herald.metric_histograms as h (metric, instance, channel, bucket, shard, n, sum)
  select metric, instance, channel, bucket, 0, sum(n), sum(sum) from gone
  group by 1, 2, 3, 4 order by 1, 2, 3, 4
  on conflict (metric, instance, channel, bucket, shard)
  do update set n = h.n + excluded.n, sum = h.sum + excluded.sum;
  get diagnostics moved = row_count;
  folded := folded + moved;
  with gone as (
    delete from herald.delivery_status_counts s
    where s.shard <> 0 and not exists (select 1 from pg_stat_activity a where a.pid = s.shard)
    returning channel, lane, status, n
  )
  insert into herald.delivery_status_counts as s (channel, lane, status, shard, n)
  select channel, lane, status, 0, sum(n) from gone group by 1, 2, 3 order by 1, 2, 3
  on conflict (channel, lane, status, shard) do update set n = s.n + excluded.n;
  get diagnostics moved = row_count;
  return folded + moved;
end;
$$;

revoke execute on function herald.fold_metric_shards() from public;
grant execute on function herald.fold_metric_shards() to service_role;
