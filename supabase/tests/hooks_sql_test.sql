-- Database webhooks in SQL: who may touch herald.hook_rules and herald.hook_events,
-- the template checks, herald.sign_standard_webhook against known vectors, pruning,
-- and herald.post_database_event degrading to a warning without pg_net and Vault.
begin;
select plan(26);

-- RLS is on, and only the service role holds grants.
select ok((select relrowsecurity from pg_class where oid = 'herald.hook_rules'::regclass),
  'hook_rules has RLS enabled');
select ok((select relrowsecurity from pg_class where oid = 'herald.hook_events'::regclass),
  'hook_events has RLS enabled');

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok('select * from herald.hook_rules', '42501', null, 'authenticated cannot read rules');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('evil', 'orders', 'INSERT', '{"recipients":["{{record.victim}}"]}')$$, '42501', null,
  'authenticated cannot write rules');
select throws_ok('select * from herald.hook_events', '42501', null, 'authenticated cannot read events');
select throws_ok($$insert into herald.hook_events (id) values ('msg_forged')$$, '42501', null,
  'authenticated cannot pre-empt an event id');
select throws_ok($$select herald.sign_standard_webhook('whsec_AAAA', 'msg', 1, '{}')$$, '42501', null,
  'authenticated cannot call sign_standard_webhook');
select throws_ok($$select herald.prune_hook_events()$$, '42501', null,
  'authenticated cannot prune events');
reset role;

set local request.jwt.claims to '';
set local role anon;
select throws_ok('select * from herald.hook_rules', '42501', null, 'anon cannot read rules');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select lives_ok($$insert into herald.hook_rules (name, table_name, event, condition, template)
  values ('hooks-sql-test', 'hooks_sql_orders', 'UPDATE', '{"record":{"status":"shipped"}}',
    '{"recipients":["{{record.user_id}}"],"title":"Shipped","data":{"order":"{{record.id}}"},
      "channels":["push","email"],"priority":"high","critical":false,"ttl_seconds":3600}')$$,
  'the service role can create a rule');
select results_eq($$select count(*)::int from herald.hook_rules where name = 'hooks-sql-test'$$,
  array[1], 'the service role can read rules');
select lives_ok($$insert into herald.hook_events (id, rule_count) values ('msg_hooks_sql_test', 1)$$,
  'the service role can record an event');
reset role;

-- A malformed template never reaches the table.
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('no-recipients', 't', 'INSERT', '{"title":"x"}')$$, '23514', null,
  'a template needs a recipients array');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('bad-recipient', 't', 'INSERT', '{"recipients":[42]}')$$, '23514', null,
  'recipients are template strings');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('bad-channel', 't', 'INSERT', '{"recipients":[],"channels":["sms"]}')$$, '23514', null,
  'only channels enqueue knows');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('bad-data', 't', 'INSERT', '{"recipients":[],"data":{"n":1}}')$$, '23514', null,
  'data values are strings');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('bad-ttl', 't', 'INSERT', '{"recipients":[],"ttl_seconds":"soon"}')$$, '23514', null,
  'a non-numeric ttl_seconds is a check violation, not a cast error');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template)
  values ('bad-event', 't', 'TRUNCATE', '{"recipients":[]}')$$, '23514', null,
  'only INSERT, UPDATE and DELETE');

-- Known vectors, computed independently (the Standard Webhooks reference
-- vector; openssl dgst -sha256 -mac HMAC over UTF-8 for the second).
select is(herald.sign_standard_webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
  'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  'sign_standard_webhook matches the Standard Webhooks reference vector');
select is(herald.sign_standard_webhook('whsec_aGVyYWxkLWxvY2FsLWRhdGFiYXNlLXdlYmhvb2tzIQ==',
    'msg_utf8', 1700000000, '{"title": "Café ✓"}'),
  'v1,ViAWnD/FObzTNo9SBuf/vw1a7bEDDyCygfyVCqTjRiM=',
  'sign_standard_webhook signs the UTF-8 bytes of the body');
select ok(position(E'\n' in herald.sign_standard_webhook('whsec_aGVyYWxkLWxvY2FsLWRhdGFiYXNlLXdlYmhvb2tzIQ==',
    repeat('m', 200), 1700000000, repeat('{}', 500))) = 0,
  'a signature is one line whatever the input');

-- Pruning forgets only what is older than the window.
insert into herald.hook_events (id, received_at) values ('msg_hooks_sql_old', now() - interval '8 days');
select is(herald.prune_hook_events(), 1, 'prune_hook_events deletes events older than 7 days');
select results_eq($$select count(*)::int from herald.hook_events
  where id in ('msg_hooks_sql_old', 'msg_hooks_sql_test')$$, array[1], 'recent events stay');

-- Without pg_net and Vault (the local cluster) the trigger warns and the app's write goes through.
create temporary table hooks_sql_orders (id int primary key, status text);
create trigger hooks_sql_orders_to_herald after insert or update or delete on hooks_sql_orders
  for each row execute function herald.post_database_event();
select lives_ok($$insert into hooks_sql_orders values (1, 'new');
  update hooks_sql_orders set status = 'shipped';
  delete from hooks_sql_orders$$,
  'post_database_event only warns when pg_net or Vault is missing');
select is((select count(*)::int from hooks_sql_orders), 0, 'the writes themselves happened');

create temporary table hooks_sql_statement (id int);
create trigger hooks_sql_statement_to_herald after insert on hooks_sql_statement
  for each statement execute function herald.post_database_event();
select throws_ok('insert into hooks_sql_statement values (1)', 'P0001', null,
  'post_database_event refuses to run as a statement trigger');

select * from finish();
rollback;
