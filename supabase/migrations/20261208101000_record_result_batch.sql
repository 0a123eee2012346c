-- The write-back in batches across requests: herald.record_result_batch.
--
-- A single delivery's write-back cost notify as much Postgres as its enqueue:
-- almost all of it a fixed cost per statement (the metrics counters' upserts,
-- the attempt log's trigger, a commit). The notify function now writes the
-- results of requests answered at the same time in one call (outbox.ts
-- createResultWriter), and needs to know which of them were written: this
-- function is herald.record_results returning the ids of the rows it updated
-- (a row whose lease another dispatcher took over, or that was cancelled, is
-- not among them).
--
-- herald.record_results stays, a wrapper counting those ids, for the previous
-- release's dispatchers while both run (expand; it goes in a later contract).
create function herald.record_result_batch(
  p_results jsonb,
  p_ids uuid[],
  p_from timestamptz,
  p_to timestamptz,
  p_instance text,
  p_attempt_bounds float8[],
  p_queue_bounds float8[]
)
returns setof uuid
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
  with r as (
    select * from jsonb_to_recordset(p_results) as r(
      id uuid, created_at timestamptz, lease timestamptz, attempt integer, status text, outcome text,
      next_attempt_at timestamptz, provider_message_id text, error text,
      status_code integer, error_code text, latency_ms integer, disable_target boolean,
      refund boolean, error_class text)
  ), written as (
    update herald.deliveries d
    set status = r.status,
        attempts = d.attempts - r.refund::integer,
        next_attempt_at = coalesce(r.next_attempt_at, d.next_attempt_at),
        locked_until = null,
        locked_by = null,
        last_error = coalesce(r.error, d.last_error),
        provider_message_id = coalesce(r.provider_message_id, d.provider_message_id),
        sent_at = case when r.status = 'sent' then now() else d.sent_at end,
        updated_at = now()
    from r
    -- The ids and the span of days as parameters as well: whatever the plan
    -- thinks of r, the rows are found through the primary keys of the days
    -- the batch spans, the other partitions pruned when the plan starts.
    where d.id = any (p_ids)
      and d.created_at between coalesce(p_from, '-infinity') and coalesce(p_to, 'infinity')
      and d.id = r.id and d.created_at = r.created_at and d.locked_until = r.lease
      and d.status = 'pending'
    returning d.id, d.device_token_id, d.webhook_endpoint_id, r.attempt,
      r.outcome, r.status_code, r.error_code, r.error, r.latency_ms, r.disable_target,
      d.channel, r.error_class, r.refund, d.notification_id, d.created_at
  ), updated as (
    -- Each notification by (id, created_at), one lookup per row (see claimDue).
    select w.*, n.request_id,
      -- When the delivery was first due: enqueued, or the requested send time.
      greatest(w.created_at, n.send_at) as due_from
    from written w cross join lateral (
      select n.request_id, n.send_at from herald.notifications n
      where n.id = w.notification_id and n.created_at = w.created_at limit 1) n
  ), logged as (
    insert into herald.delivery_attempts
      (delivery_id, attempt, outcome, status_code, error_code, error, latency_ms, request_id)
    select u.id, u.attempt, u.outcome, u.status_code, u.error_code, u.error, u.latency_ms,
      u.request_id
    from updated u
    where u.outcome not in ('deferred', 'released')
  ), disabled_tokens as (
    update herald.device_tokens t
    set disabled_at = now(), disabled_reason = u.error_code
    from updated u
    where u.disable_target and t.id = u.device_token_id and t.disabled_at is null
    returning u.error_class
  ), disabled_endpoints as (
    update herald.webhook_endpoints e
    set disabled_at = now(), disabled_reason = left(concat_ws(': ', u.error_code, u.error), 1000)
    from updated u
    where u.disable_target and e.id = u.webhook_endpoint_id and e.disabled_at is null
    returning u.error_class
  ), counted as (
    -- Key order, so two writers sharing a shard (a reused pid) cannot deadlock.
    insert into herald.metric_counters as c (metric, instance, channel, label, shard, n)
    select metric, p_instance, channel, label, pg_backend_pid(), count(*) from (
      select 'deliveries' as metric, u.channel,
        case when u.outcome = 'retry' then 'retried' else u.outcome end as label
      from updated u
      union all
      select 'attempts', u.channel, u.error_class from updated u
      where u.outcome not in ('deferred', 'released')
      union all
      select 'device_tokens_disabled', '', error_class from disabled_tokens
      union all
      select 'webhook_endpoints_disabled', '', error_class from disabled_endpoints
    ) o group by metric, channel, label order by metric, channel, label
    on conflict (metric, instance, channel, label, shard) do update set n = c.n + excluded.n
  ), observed as (
    select v.metric, u.channel, v.seconds
    from updated u, lateral (values
      ('attempt_duration', case when u.outcome not in ('deferred', 'released')
        then u.latency_ms / 1000.0::float8 end),
      -- To the first attempt's start: the provider's answer took latency_ms of it.
      ('enqueue_to_first_attempt',
        case when u.attempt = 1 and not u.refund
               and u.outcome not in ('expired', 'deferred', 'released')
          then greatest(0, extract(epoch from now() - u.due_from)::float8
                           - coalesce(u.latency_ms, 0) / 1000.0::float8) end),
      ('enqueue_to_sent', case when u.outcome = 'sent'
        then greatest(0, extract(epoch from now() - u.due_from)::float8) end)
    ) v(metric, seconds)
    where v.seconds is not null
  ), histogram as (
    -- Bucket i holds values above bound i-1 up to bound i (Prometheus's "le"):
    -- the bounds below the value, counted in C by width_bucket over the
    -- negated bounds in ascending order. Past the last bound: +Inf.
    insert into herald.metric_histograms as h (metric, instance, channel, bucket, shard, n, sum)
    select metric, p_instance, channel, bucket, pg_backend_pid(), count(*), sum(seconds)
    from (
      select o.*, (case when o.metric = 'attempt_duration'
          then cardinality(p_attempt_bounds) - width_bucket(-o.seconds, p_attempt_bounds)
          else cardinality(p_queue_bounds) - width_bucket(-o.seconds, p_queue_bounds)
        end)::smallint as bucket
      from observed o
    ) b
    group by metric, channel, bucket order by metric, channel, bucket
    on conflict (metric, instance, channel, bucket, shard)
    do update set n = h.n + excluded.n, sum = h.sum + excluded.sum
  )
  select u.id from updated u;
end;
$$;
revoke all on function herald.record_result_batch(jsonb, uuid[], timestamptz, timestamptz, text,
  float8[], float8[]) from public;
comment on function herald.record_result_batch(jsonb, uuid[], timestamptz, timestamptz, text,
  float8[], float8[]) is
  'The dispatcher''s write-back of claimed deliveries (outbox.ts recordResults): results, attempt log, target hygiene and metrics in one statement; answers the ids it updated.';

create or replace function herald.record_results(
  p_results jsonb,
  p_ids uuid[],
  p_from timestamptz,
  p_to timestamptz,
  p_instance text,
  p_attempt_bounds float8[],
  p_queue_bounds float8[],
  out recorded integer
)
language sql
set search_path = ''
as $$
  select count(*)::integer from herald.record_result_batch(p_results, p_ids, p_from, p_to,
    p_instance, p_attempt_bounds, p_queue_bounds);
$$;
comment on function herald.record_results(jsonb, uuid[], timestamptz, timestamptz, text,
  float8[], float8[]) is
  'The previous release''s write-back (a count); herald.record_result_batch does the work.';
