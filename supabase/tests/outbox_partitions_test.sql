-- The partitioned outbox's whole cycle on a fake clock (herald.maintain_outbox's
-- p_now): partitions made ahead, days past retention detached with their
-- notifications and dropped by the next run, attempt-log days sooner, and a
-- day holding a delivery still scheduled 30 days ahead or in back-off kept
-- until it ends. Nothing else is lost, and the outbox gauge's counts stay exact.
begin;
select plan(31);

create temporary table clock on commit drop as
  select (herald.partitioned_since() at time zone 'UTC')::date as since;
-- Upkeep at an instant, run until one run detaches something (at most three):
-- the runs before it may first clear what earlier runs detached (a kept
-- foreign key, then the tables).
create function pg_temp.upkeep_until_detached(p_at timestamptz)
returns table (action text, partition_name text, note text) language plpgsql as $f$
declare
  r record;
  detached boolean;
begin
  for i in 1 .. 3 loop
    detached := false;
    for r in select * from herald.maintain_outbox(p_at) m loop
      action := r.action;
      partition_name := r.partition_name;
      note := r.note;
      detached := detached or r.action = 'detached';
      return next;
    end loop;
    exit when detached;
  end loop;
end $f$;
create temporary table users_triggers on commit drop as
  select count(*)::int as n from pg_trigger where tgrelid = 'auth.users'::regclass;

select ok((select count(*) = 3 * 6 from pg_inherits i join pg_class c on c.oid = i.inhrelid
           where c.relname ~ '^(notifications|deliveries|delivery_attempts)_p\d{8}$'
             and to_date(right(c.relname, 8), 'YYYYMMDD')
                 between (select since from clock) and (select since from clock) + 5),
  'the migration made each table''s partitions ahead, from where the days begin');
select is((select count(*)::int from herald.maintain_outbox() m where m.action = 'created'), 0,
  'a second run makes nothing: it is idempotent');
select results_eq($$select c.relname::text collate "default" from pg_inherits i join pg_class c on c.oid = i.inhrelid
                    where c.relname like '%\_legacy' order by 1$$,
  $$values ('deliveries_legacy'), ('delivery_attempts_legacy'), ('notifications_legacy')$$,
  'what existed before is one legacy partition per table');

-- Partitions are reached only through their tables (and so through RLS).
select 'deliveries_p' || to_char(since + 5, 'YYYYMMDD') as day_partition from clock \gset
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok(format('select * from herald.%I', :'day_partition'),
  '42501', null, 'a user cannot read a partition directly');
select throws_ok('select * from herald.deliveries_legacy', '42501', null,
  'nor the legacy one');
select throws_ok('select * from herald.maintain_outbox()', '42501', null,
  'nor run the upkeep');
reset role;


-- Day 1: a notification with one delivery sent and one scheduled 30 days ahead.
-- Day 2: one in back-off. Day 3: everything ended (sent, dead).
insert into herald.notifications (id, title, created_at)
select ('00000000-0000-4000-8000-00000000000' || n)::uuid, 'day ' || n,
  (since + n)::timestamp at time zone 'UTC' + interval '1 hour'
from clock, generate_series(1, 3) n;
insert into herald.deliveries (id, notification_id, channel, target, status, attempts,
  next_attempt_at, created_at)
select ('00000000-0000-4000-8000-0000000000' || d.id)::uuid,
  ('00000000-0000-4000-8000-00000000000' || d.day)::uuid, 'email', d.id || '@example.com',
  d.status, d.attempts, c.created_at + d.due, c.created_at
from clock, lateral (values
  ('11', 1, 'sent', 1, interval '0'), ('12', 1, 'pending', 0, interval '30 days'),
  ('21', 2, 'pending', 3, interval '2 hours'),
  ('31', 3, 'sent', 1, interval '0'), ('32', 3, 'dead', 8, interval '0')
) d(id, day, status, attempts, due),
lateral (select (since + d.day)::timestamp at time zone 'UTC' + interval '1 hour' as created_at) c;
insert into herald.delivery_attempts (delivery_id, attempt, outcome, at)
select ('00000000-0000-4000-8000-0000000000' || a.id)::uuid, 1, a.outcome,
  (since + a.day)::timestamp at time zone 'UTC' + interval '2 hours'
from clock, (values ('11', 1, 'sent'), ('21', 2, 'retry'), ('32', 3, 'dead')) a(id, day, outcome);

select results_eq($$select c.relname::text collate "default" from herald.deliveries d
                    join pg_class c on c.oid = d.tableoid
                    where d.id::text like '00000000-0000-4000-8000-0000000000%' order by d.id$$,
  $$select 'deliveries_p' || to_char(since + d, 'YYYYMMDD')
    from clock, unnest(array[1, 1, 2, 3, 3]) d$$,
  'each delivery lives in its day''s partition');

select throws_ok($$insert into herald.deliveries (notification_id, channel, target, created_at)
                    values ('00000000-0000-4000-8000-000000000001', 'email', 'x@example.com', now())$$,
  '23503', null, 'a delivery not created at its notification''s instant is refused (the claim finds notifications by it)');
select throws_ok($$insert into herald.deliveries (notification_id, channel, target)
                    values (gen_random_uuid(), 'email', 'x@example.com')$$,
  '23503', null, 'and one whose notification does not exist, as the foreign key refused it');

-- Deleting a notification deletes its deliveries and their attempts, as the foreign keys did.
create temporary table doomed (id uuid) on commit drop;
with n as (insert into herald.notifications (title) values ('to delete') returning id, created_at),
d as (insert into herald.deliveries (notification_id, created_at, channel, target)
      select id, created_at, 'email', 'gone@example.com' from n returning id)
insert into doomed select id from d;
insert into herald.delivery_attempts (delivery_id, attempt, outcome) select id, 1, 'retry' from doomed;
delete from herald.notifications where title = 'to delete';
select is((select count(*)::int from herald.deliveries where id in (select id from doomed))
          + (select count(*)::int from herald.delivery_attempts
             where delivery_id in (select id from doomed)),
  0, 'deleting a notification deletes its deliveries and their attempt log');

create function pg_temp.counts_are_exact() returns boolean language sql as $$
  select not exists (
    (select channel, lane, status, sum(n)::bigint from herald.delivery_status_counts
     group by 1, 2, 3 having sum(n) <> 0
     except
     select channel, lane, status, count(*) from herald.deliveries group by 1, 2, 3)
    union all
    (select channel, lane, status, count(*) from herald.deliveries group by 1, 2, 3
     except
     select channel, lane, status, sum(n)::bigint from herald.delivery_status_counts
     group by 1, 2, 3 having sum(n) <> 0))
$$;
select ok(pg_temp.counts_are_exact(), 'the outbox gauge''s counts match the rows');

-- 20 days after day 3: the attempt log (14 days) goes, the outbox (30) stays.
create temporary table run1 on commit drop as
  select * from pg_temp.upkeep_until_detached((select (since + 23)::timestamp at time zone 'UTC' from clock));
select ok((select count(*) = 3 from run1 where action = 'detached'
           and partition_name in (select 'delivery_attempts_p' || to_char(since + d, 'YYYYMMDD')
                                  from clock, generate_series(1, 3) d)),
  'attempt-log days past their 14 days are detached');
select is((select count(*)::int from run1 where action in ('detached', 'dropped')
           and partition_name !~ '^delivery_attempts_'), 0,
  'no outbox day is detached before its 30 days');
select ok((select count(*) = 3 * 8 from run1 where action = 'created'),
  'the days ahead of the new date are made, eight for each table');
select is((select count(*)::int from herald.deliveries where id::text like '00000000-0000-4000-8000-0000000000%'), 5,
  'every delivery is still there');

-- The next run drops the detached tables, and detaches nothing while it does.
create temporary table run1b on commit drop as
  select * from herald.maintain_outbox((select (since + 23)::timestamp at time zone 'UTC' from clock));
create temporary table run1c on commit drop as
  select * from herald.maintain_outbox((select (since + 23)::timestamp at time zone 'UTC' from clock));
select ok(not exists (select 1 from run1b where action not in ('dropped', 'unkeyed'))
          and not exists (select 1 from run1c where action = 'detached'
                          and exists (select 1 from run1b b where b.action = 'dropped'))
          and (select coalesce(array_agg(partition_name), '{}') from run1b where action = 'dropped')
              <@ (select array_agg(partition_name) from run1 where action = 'detached'),
  'the next runs drop the detached attempt-log days (a kept key first), and nothing else');
select is((select count(*)::int from pg_class c where c.relnamespace = 'herald'::regnamespace
           and c.relname in (select 'delivery_attempts_p' || to_char(since + d, 'YYYYMMDD')
                             from clock, generate_series(1, 3) d)), 0,
  'their tables are gone');

-- 40 days on: day 3 goes with its notification; days 1 and 2 stay for their pending deliveries.
create temporary table run2 on commit drop as
  select * from pg_temp.upkeep_until_detached((select (since + 40)::timestamp at time zone 'UTC' from clock));
select results_eq($$select partition_name from run2
                    where action = 'detached' and partition_name ~ '_p\d{8}$'
                      and to_date(right(partition_name, 8), 'YYYYMMDD')
                          between (select since + 1 from clock) and (select since + 3 from clock)
                    order by 1$$,
  $$select 'deliveries_p' || to_char(since + 3, 'YYYYMMDD') from clock
    union all select 'notifications_p' || to_char(since + 3, 'YYYYMMDD') from clock$$,
  'the day whose deliveries all ended is detached, notifications with it');
select results_eq($$select partition_name, note from run2 where action = 'kept'
                    and partition_name <> 'deliveries_legacy' order by 1$$,
  $$select 'deliveries_p' || to_char(since + 1, 'YYYYMMDD'),
      '1 deliveries not yet delivered, cancelled or dead' from clock
    union all
    select 'deliveries_p' || to_char(since + 2, 'YYYYMMDD'),
      '1 deliveries not yet delivered, cancelled or dead' from clock$$,
  'a day with a delivery scheduled 30 days ahead, and one with a delivery in back-off, are kept and reported');
select results_eq($$select id::text from herald.deliveries
                    where id::text like '00000000-0000-4000-8000-0000000000%' order by 1$$,
  $$values ('00000000-0000-4000-8000-000000000011'), ('00000000-0000-4000-8000-000000000012'),
           ('00000000-0000-4000-8000-000000000021')$$,
  'the kept days keep every row, terminal ones included');
select results_eq($$select title from herald.notifications where title like 'day %' order by 1$$,
  $$values ('day 1'), ('day 2')$$, 'and their notifications');
select ok(pg_temp.counts_are_exact(), 'the gauge lost exactly what was dropped');
select is((select sum(n)::int from herald.delivery_status_counts
           where day = (select since + 3 from clock)), null, 'and holds nothing of the detached day');
-- A day later: one more attempt-log day is due, and waits.
-- The runs after clear the detached tables: a foreign key of their own first
-- if they kept one (its triggers are on auth.users), then the tables; while
-- they do, nothing is detached and what is due waits.
create temporary table run2b on commit drop as
  select * from herald.maintain_outbox((select (since + 41)::timestamp at time zone 'UTC' from clock));
create temporary table run2c on commit drop as
  select * from herald.maintain_outbox((select (since + 41)::timestamp at time zone 'UTC' from clock));
select ok((select count(*) = 1 from run2b where action = 'waiting'
           and partition_name = (select 'delivery_attempts_p' || to_char(since + 26, 'YYYYMMDD') from clock))
          and not exists (select 1 from run2b where action = 'detached')
          and not exists (select 1 from run2b where action = 'unkeyed'
                          and exists (select 1 from run2b b where b.action = 'dropped')),
  'a run that clears detached days detaches nothing, and drops keys or tables, not both');
select is((select count(*)::int from pg_class c where c.relnamespace = 'herald'::regnamespace
           and c.relname in (select t || to_char(since + 3, 'YYYYMMDD') from clock,
                             unnest(array['deliveries_p', 'notifications_p']) t)), 0,
  'within two runs the detached day''s tables are gone');
select is((select count(*)::int from pg_trigger where tgrelid = 'auth.users'::regclass),
  (select n from users_triggers), 'and auth.users has the triggers it had');
select ok(not exists (select 1 from run2c where action = 'detached')
          or not exists (select 1 from run2b where action = 'unkeyed'),
  'the run after an unkeying run drops and does not detach either');

-- The scheduled delivery is sent, the one in back-off dies: the next run drops both days.
update herald.deliveries set status = 'sent', sent_at = now()
where id = '00000000-0000-4000-8000-000000000012';
update herald.deliveries set status = 'dead'
where id = '00000000-0000-4000-8000-000000000021';
-- Runs until one detaches (the ones before may be clearing what earlier runs detached).
create temporary table run3 on commit drop as
  select * from herald.maintain_outbox((select (since + 41)::timestamp at time zone 'UTC' from clock));
insert into run3 select m.* from (select 1 where not exists (select 1 from run3 where action = 'detached')) g,
  lateral herald.maintain_outbox((select (since + 41)::timestamp at time zone 'UTC' from clock)) m;
insert into run3 select m.* from (select 1 where not exists (select 1 from run3 where action = 'detached')) g,
  lateral herald.maintain_outbox((select (since + 41)::timestamp at time zone 'UTC' from clock)) m;
select ok((select count(*) = 4 from run3 where action = 'detached'
           and partition_name in (select t || to_char(since + d, 'YYYYMMDD')
                                  from clock, generate_series(1, 2) d,
                                  unnest(array['deliveries_p', 'notifications_p']) t)),
  'once they end, their days go');
select is((select count(*)::int from herald.deliveries where id::text like '00000000-0000-4000-8000-0000000000%'), 0,
  'nothing of those days is left');
select ok(pg_temp.counts_are_exact(), 'the counts still match');

-- A retention change applies on the next run, no migration.
update herald.retention set keep = interval '50 days' where name = 'notifications';
select is((select count(*)::int from herald.maintain_outbox(
             (select (since + 42)::timestamp at time zone 'UTC' from clock)) m
           where m.action in ('detached', 'waiting') and m.partition_name !~ '^delivery_attempts_'), 0,
  'kept 50 days, nothing more of the outbox is dropped');

select * from finish();
rollback;
