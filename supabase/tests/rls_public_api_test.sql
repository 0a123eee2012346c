-- RLS matrix for the public API's tables (topic_subscriptions, preferences,
-- opt_outs, idempotency_keys): anon, the owner, another user, the service role
-- × select, insert, update, delete. No grant: 42501. Filtered by RLS: nothing
-- seen or touched. Allowed: it works.
begin;
select plan(70);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.topic_subscriptions (topic, user_id) values
  ('news', '11111111-1111-4111-8111-111111111111');
insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end) values
  ('11111111-1111-4111-8111-111111111111', 'Europe/Berlin', '22:00', '07:00');
insert into herald.opt_outs (user_id, category, channel) values
  ('11111111-1111-4111-8111-111111111111', 'marketing', 'email');
insert into herald.idempotency_keys (caller, key, request_hash) values
  ('user:11111111-1111-4111-8111-111111111111', 'alice-1', 'hash-1'),
  ('key:rls-test-service', 'service-1', 'hash-s');

-- ─── topic_subscriptions: users select, insert, delete their own; no update grant ───

set local request.jwt.claims to '{"role":"anon"}';
set local role anon;
select throws_ok('select * from herald.topic_subscriptions', '42501',
  'permission denied for schema herald',
  'topic_subscriptions: anon cannot select');
select throws_ok($$insert into herald.topic_subscriptions (topic, user_id)
  values ('news', '22222222-2222-4222-8222-222222222222')$$, '42501',
  'permission denied for schema herald',
  'topic_subscriptions: anon cannot insert');
select throws_ok($$update herald.topic_subscriptions set topic = 'other'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'topic_subscriptions: anon cannot update');
select throws_ok($$delete from herald.topic_subscriptions
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'topic_subscriptions: anon cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select topic from herald.topic_subscriptions
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array['news'], 'topic_subscriptions: the owner sees their subscription');
select lives_ok($$insert into herald.topic_subscriptions (topic, user_id)
  values ('sports', '11111111-1111-4111-8111-111111111111')$$,
  'topic_subscriptions: the owner can subscribe themself');
select throws_ok($$insert into herald.topic_subscriptions (topic, user_id)
  values ('sports', '22222222-2222-4222-8222-222222222222')$$, '42501',
  'new row violates row-level security policy for table "topic_subscriptions"',
  'topic_subscriptions: the owner cannot subscribe someone else');
select throws_ok($$update herald.topic_subscriptions set topic = 'weather'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table topic_subscriptions',
  'topic_subscriptions: not even the owner may update (no grant)');
select results_eq($$with d as (delete from herald.topic_subscriptions
  where topic = 'sports' and user_id = '11111111-1111-4111-8111-111111111111' returning 1)
  select count(*)::int from d$$, array[1], 'topic_subscriptions: the owner can unsubscribe');
reset role;

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.topic_subscriptions
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[0], 'topic_subscriptions: another user sees nothing');
select throws_ok($$insert into herald.topic_subscriptions (topic, user_id)
  values ('sports', '11111111-1111-4111-8111-111111111111')$$, '42501',
  'new row violates row-level security policy for table "topic_subscriptions"',
  'topic_subscriptions: another user cannot subscribe the owner');
select throws_ok($$update herald.topic_subscriptions set topic = 'weather'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table topic_subscriptions',
  'topic_subscriptions: another user cannot update (no grant)');
select results_eq($$with d as (delete from herald.topic_subscriptions
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from d$$,
  array[0], 'topic_subscriptions: another user deletes nothing');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.topic_subscriptions
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[1], 'topic_subscriptions: the service role sees every subscription');
select lives_ok($$insert into herald.topic_subscriptions (topic, user_id)
  values ('news', '22222222-2222-4222-8222-222222222222')$$,
  'topic_subscriptions: the service role can subscribe anyone');
select results_eq($$with u as (update herald.topic_subscriptions set topic = 'news.v2'
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from u$$, array[2],
  'topic_subscriptions: the service role can update any subscription');
select results_eq($$with d as (delete from herald.topic_subscriptions
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from d$$, array[2],
  'topic_subscriptions: the service role can delete any subscription');
reset role;

-- ─── preferences: users select, insert, update, delete their own row ───

set local request.jwt.claims to '{"role":"anon"}';
set local role anon;
select throws_ok('select * from herald.preferences', '42501',
  'permission denied for schema herald',
  'preferences: anon cannot select');
select throws_ok($$insert into herald.preferences (user_id)
  values ('22222222-2222-4222-8222-222222222222')$$, '42501',
  'permission denied for schema herald',
  'preferences: anon cannot insert');
select throws_ok($$update herald.preferences set time_zone = 'UTC'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'preferences: anon cannot update');
select throws_ok($$delete from herald.preferences
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'preferences: anon cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select time_zone from herald.preferences
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array['Europe/Berlin'], 'preferences: the owner sees their row');
select results_eq($$with u as (update herald.preferences set time_zone = 'America/New_York'
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from u$$,
  array[1], 'preferences: the owner can update their row');
select throws_ok($$update herald.preferences set user_id = '22222222-2222-4222-8222-222222222222'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'new row violates row-level security policy for table "preferences"',
  'preferences: the owner cannot hand their row to someone else');
select results_eq($$with d as (delete from herald.preferences
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from d$$,
  array[1], 'preferences: the owner can delete their row');
select lives_ok($$insert into herald.preferences (user_id, time_zone)
  values ('11111111-1111-4111-8111-111111111111', 'Europe/Berlin')$$,
  'preferences: the owner can insert their row');
select throws_ok($$insert into herald.preferences (user_id)
  values ('22222222-2222-4222-8222-222222222222')$$, '42501',
  'new row violates row-level security policy for table "preferences"',
  'preferences: the owner cannot insert a row for someone else');
reset role;

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.preferences
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[0], 'preferences: another user sees nothing');
select throws_ok($$insert into herald.preferences (user_id, time_zone)
  values ('11111111-1111-4111-8111-111111111111', 'UTC')$$, '42501',
  'new row violates row-level security policy for table "preferences"',
  'preferences: another user cannot insert a row for the owner');
select results_eq($$with u as (update herald.preferences set quiet_start = null, quiet_end = null
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from u$$,
  array[0], 'preferences: another user updates nothing');
select results_eq($$with d as (delete from herald.preferences
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from d$$,
  array[0], 'preferences: another user deletes nothing');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.preferences
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[1], 'preferences: the service role sees every row');
select lives_ok($$insert into herald.preferences (user_id)
  values ('22222222-2222-4222-8222-222222222222')$$,
  'preferences: the service role can insert for anyone');
select results_eq($$with u as (update herald.preferences set time_zone = 'UTC'
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from u$$, array[2],
  'preferences: the service role can update any row');
select results_eq($$with d as (delete from herald.preferences
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from d$$, array[2],
  'preferences: the service role can delete any row');
reset role;

-- ─── opt_outs: users select, insert, delete their own; no update grant ───

set local request.jwt.claims to '{"role":"anon"}';
set local role anon;
select throws_ok('select * from herald.opt_outs', '42501', 'permission denied for schema herald',
  'opt_outs: anon cannot select');
select throws_ok($$insert into herald.opt_outs (user_id, category, channel)
  values ('22222222-2222-4222-8222-222222222222', '*', 'push')$$, '42501',
  'permission denied for schema herald',
  'opt_outs: anon cannot insert');
select throws_ok($$update herald.opt_outs set channel = 'push'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'opt_outs: anon cannot update');
select throws_ok($$delete from herald.opt_outs
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'opt_outs: anon cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select category || '/' || channel from herald.opt_outs
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array['marketing/email'], 'opt_outs: the owner sees their opt-out');
select lives_ok($$insert into herald.opt_outs (user_id, category, channel)
  values ('11111111-1111-4111-8111-111111111111', '*', 'push')$$,
  'opt_outs: the owner can opt out');
select throws_ok($$insert into herald.opt_outs (user_id, category, channel)
  values ('22222222-2222-4222-8222-222222222222', '*', 'push')$$, '42501',
  'new row violates row-level security policy for table "opt_outs"',
  'opt_outs: the owner cannot opt someone else out');
select throws_ok($$update herald.opt_outs set channel = 'webhook'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table opt_outs',
  'opt_outs: not even the owner may update (no grant)');
select results_eq($$with d as (delete from herald.opt_outs
  where user_id = '11111111-1111-4111-8111-111111111111' and category = '*' returning 1)
  select count(*)::int from d$$, array[1], 'opt_outs: the owner can opt back in');
reset role;

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.opt_outs
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[0], 'opt_outs: another user sees nothing');
select throws_ok($$insert into herald.opt_outs (user_id, category, channel)
  values ('11111111-1111-4111-8111-111111111111', '*', 'email')$$, '42501',
  'new row violates row-level security policy for table "opt_outs"',
  'opt_outs: another user cannot opt the owner out');
select throws_ok($$update herald.opt_outs set channel = 'push'
  where user_id = '11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table opt_outs',
  'opt_outs: another user cannot update (no grant)');
select results_eq($$with d as (delete from herald.opt_outs
  where user_id = '11111111-1111-4111-8111-111111111111' returning 1) select count(*)::int from d$$,
  array[0], 'opt_outs: another user deletes nothing');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.opt_outs
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[1], 'opt_outs: the service role sees every opt-out');
select lives_ok($$insert into herald.opt_outs (user_id, category, channel)
  values ('22222222-2222-4222-8222-222222222222', 'marketing', 'email')$$,
  'opt_outs: the service role can insert for anyone');
select results_eq($$with u as (update herald.opt_outs set channel = 'push'
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from u$$, array[2],
  'opt_outs: the service role can update any opt-out');
select results_eq($$with d as (delete from herald.opt_outs
  where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')
  returning 1) select count(*)::int from d$$, array[2],
  'opt_outs: the service role can delete any opt-out');
reset role;

-- ─── idempotency_keys: users select, insert, update their own (caller 'user:<id>'); no delete grant ───

set local request.jwt.claims to '{"role":"anon"}';
set local role anon;
select throws_ok('select * from herald.idempotency_keys', '42501',
  'permission denied for schema herald',
  'idempotency_keys: anon cannot select');
select throws_ok($$insert into herald.idempotency_keys (caller, key, request_hash)
  values ('user:22222222-2222-4222-8222-222222222222', 'anon-1', 'h')$$, '42501',
  'permission denied for schema herald',
  'idempotency_keys: anon cannot insert');
select throws_ok($$update herald.idempotency_keys set status = 200
  where caller = 'user:11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'idempotency_keys: anon cannot update');
select throws_ok($$delete from herald.idempotency_keys
  where caller = 'user:11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for schema herald',
  'idempotency_keys: anon cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select key from herald.idempotency_keys
  where caller in ('user:11111111-1111-4111-8111-111111111111',
    'user:22222222-2222-4222-8222-222222222222', 'key:rls-test-service')$$,
  array['alice-1'], 'idempotency_keys: the owner sees only their own keys, not the service''s');
select lives_ok($$insert into herald.idempotency_keys (caller, key, request_hash)
  values ('user:11111111-1111-4111-8111-111111111111', 'alice-2', 'hash-2')$$,
  'idempotency_keys: the owner can insert a key of their own');
select throws_ok($$insert into herald.idempotency_keys (caller, key, request_hash)
  values ('key:rls-test-service', 'forged', 'h')$$, '42501',
  'new row violates row-level security policy for table "idempotency_keys"',
  'idempotency_keys: the owner cannot insert under another caller');
select results_eq($$with u as (update herald.idempotency_keys set status = 202, response = '{"ok":true}'
  where caller in ('user:11111111-1111-4111-8111-111111111111', 'key:rls-test-service') returning 1)
  select count(*)::int from u$$, array[2], 'idempotency_keys: the owner can update their own keys (only)');
select throws_ok($$update herald.idempotency_keys set caller = 'user:22222222-2222-4222-8222-222222222222'
  where caller = 'user:11111111-1111-4111-8111-111111111111'$$, '42501',
  'new row violates row-level security policy for table "idempotency_keys"',
  'idempotency_keys: the owner cannot move a key to another caller');
select throws_ok($$delete from herald.idempotency_keys
  where caller = 'user:11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table idempotency_keys',
  'idempotency_keys: not even the owner may delete (no grant)');
reset role;

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.idempotency_keys
  where caller in ('user:11111111-1111-4111-8111-111111111111', 'key:rls-test-service')$$,
  array[0], 'idempotency_keys: another user sees nothing');
select throws_ok($$insert into herald.idempotency_keys (caller, key, request_hash)
  values ('user:11111111-1111-4111-8111-111111111111', 'planted', 'h')$$, '42501',
  'new row violates row-level security policy for table "idempotency_keys"',
  'idempotency_keys: another user cannot insert under the owner');
select results_eq($$with u as (update herald.idempotency_keys set status = 500
  where caller in ('user:11111111-1111-4111-8111-111111111111', 'key:rls-test-service') returning 1)
  select count(*)::int from u$$, array[0], 'idempotency_keys: another user updates nothing');
select throws_ok($$delete from herald.idempotency_keys
  where caller = 'user:11111111-1111-4111-8111-111111111111'$$, '42501',
  'permission denied for table idempotency_keys',
  'idempotency_keys: another user cannot delete (no grant)');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.idempotency_keys
  where caller in ('user:11111111-1111-4111-8111-111111111111', 'key:rls-test-service')$$,
  array[3], 'idempotency_keys: the service role sees every key');
select lives_ok($$insert into herald.idempotency_keys (caller, key, request_hash)
  values ('user:22222222-2222-4222-8222-222222222222', 'bob-1', 'h')$$,
  'idempotency_keys: the service role can insert for any caller');
select results_eq($$with u as (update herald.idempotency_keys set status = 201
  where caller in ('user:11111111-1111-4111-8111-111111111111',
    'user:22222222-2222-4222-8222-222222222222', 'key:rls-test-service') returning 1)
  select count(*)::int from u$$, array[4], 'idempotency_keys: the service role can update any key');
select results_eq($$with d as (delete from herald.idempotency_keys
  where caller in ('user:11111111-1111-4111-8111-111111111111',
    'user:22222222-2222-4222-8222-222222222222', 'key:rls-test-service') returning 1)
  select count(*)::int from d$$, array[4], 'idempotency_keys: the service role can delete any key');
reset role;

select * from finish();
rollback;
