-- RLS matrix for herald.deliveries: anon, the sender, the recipient, another user, the service role.
-- Users only read (their own); every write belongs to Herald's SQL functions and the service role.
begin;
select plan(20);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test'),
  ('33333333-3333-4333-8333-333333333333', 'carol@example.test');
-- Alice sent a notification to Bob, delivered to Bob's phone, tried once.
insert into herald.device_tokens (id, user_id, token, platform) values
  ('aaaaaaaa-0000-4000-8000-000000000002', '22222222-2222-4222-8222-222222222222', 'bob-token', 'android');
insert into herald.notifications (id, sender_id, title) values
  ('bbbbbbbb-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'Hi Bob');
insert into herald.deliveries (id, notification_id, recipient_id, channel, device_token_id, target, platform) values
  ('cccccccc-0000-4000-8000-000000000001', 'bbbbbbbb-0000-4000-8000-000000000001',
   '22222222-2222-4222-8222-222222222222', 'push', 'aaaaaaaa-0000-4000-8000-000000000002', 'bob-token', 'android');
insert into herald.delivery_attempts (delivery_id, attempt, outcome, status_code) values
  ('cccccccc-0000-4000-8000-000000000001', 1, 'retry', 503);

set local role anon;
select throws_ok('select * from herald.deliveries', '42501', null, 'anon cannot select');
select throws_ok($$insert into herald.deliveries (notification_id, recipient_id, channel, target) values ('bbbbbbbb-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222', 'push', 'forged')$$, '42501', null, 'anon cannot insert');
select throws_ok($$update herald.deliveries set status = 'sent' where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'anon cannot update');
select throws_ok($$delete from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'anon cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, array[1], 'the sender sees it');
select throws_ok($$insert into herald.deliveries (notification_id, recipient_id, channel, target) values ('bbbbbbbb-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222', 'push', 'forged')$$, '42501', null, 'the sender cannot insert');
select throws_ok($$update herald.deliveries set status = 'sent' where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'the sender cannot update');
select throws_ok($$delete from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'the sender cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, array[1], 'the recipient sees it');
select throws_ok($$insert into herald.deliveries (notification_id, recipient_id, channel, target) values ('bbbbbbbb-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222', 'push', 'forged')$$, '42501', null, 'the recipient cannot insert');
select throws_ok($$update herald.deliveries set status = 'sent' where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'the recipient cannot update');
select throws_ok($$delete from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'the recipient cannot delete');
reset role;

set local request.jwt.claims to '{"sub":"33333333-3333-4333-8333-333333333333","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, array[0], 'another user sees nothing');
select throws_ok($$insert into herald.deliveries (notification_id, recipient_id, channel, target) values ('bbbbbbbb-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222', 'push', 'forged')$$, '42501', null, 'another user cannot insert');
select throws_ok($$update herald.deliveries set status = 'sent' where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'another user cannot update');
select throws_ok($$delete from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, '42501', null, 'another user cannot delete');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001'$$, array[1], 'the service role sees it');
select lives_ok($$insert into herald.deliveries (notification_id, recipient_id, channel, target) values ('bbbbbbbb-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222', 'push', 'forged')$$, 'the service role can insert');
select results_eq($$with u as (update herald.deliveries set status = 'sent' where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001' returning 1) select count(*)::int from u$$, array[2],
  'the service role can update');
select results_eq($$with d as (delete from herald.deliveries where notification_id = 'bbbbbbbb-0000-4000-8000-000000000001' returning 1) select count(*)::int from d$$, array[2],
  'the service role can delete');
reset role;

select * from finish();
rollback;
