-- herald.enqueue, herald.register_device and the auth helpers they rely on.
begin;
select plan(16);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.device_tokens (user_id, token, platform, last_seen_at, disabled_at) values
  ('11111111-1111-4111-8111-111111111111', 'alice-phone', 'ios', now(), null),
  ('11111111-1111-4111-8111-111111111111', 'alice-browser', 'web', now() - interval '10 days', null),
  ('11111111-1111-4111-8111-111111111111', 'alice-dead', 'android', now(), now()),
  ('11111111-1111-4111-8111-111111111111', 'alice-stale', 'android', now() - interval '271 days', null),
  ('22222222-2222-4222-8222-222222222222', 'bob-phone', 'android', now(), null);

-- auth helpers read request.jwt.claims exactly as on Supabase.
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated","email":"alice@example.test"}';
select is(auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid, 'auth.uid() is the sub claim');
select is(auth.role(), 'authenticated', 'auth.role() is the role claim');
select is(auth.jwt() ->> 'email', 'alice@example.test', 'auth.jwt() is the whole claim set');

set local role authenticated;
select results_eq(
  $$select deliveries from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"Hi","ttl_seconds":60}')$$,
  array[2], 'enqueue creates one delivery per live token (not disabled, not stale)');
reset role;
select set_eq(
  $$select d.target from herald.deliveries d join herald.notifications n on n.id = d.notification_id
    where n.title = 'Hi'$$,
  array['alice-phone', 'alice-browser'], 'the live tokens are the targets');
select results_eq(
  $$select sender_id from herald.notifications where title = 'Hi'$$,
  array['11111111-1111-4111-8111-111111111111'::uuid], 'the signed-in user is the sender');
select ok(
  (select expires_at between now() + interval '59 seconds' and now() + interval '61 seconds'
   from herald.notifications where title = 'Hi'),
  'ttl_seconds becomes expires_at');

set local role authenticated;
select results_eq(
  $$select notification_id is null, deliveries, denied, denied_count from herald.enqueue(
      array['22222222-2222-4222-8222-222222222222']::uuid[], '{"title":"Psst"}')$$,
  $$values (true, 0, array['22222222-2222-4222-8222-222222222222']::uuid[], 1)$$,
  'can_notify refuses notifying another user by default, reported per recipient');
reset role;
select is((select count(*)::int from herald.notifications where title = 'Psst'), 0,
  'a refused enqueue leaves nothing behind');

set local request.jwt.claims to '';
set local role anon;
select throws_ok(
  $$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[], '{"title":"x"}')$$,
  '42501', null, 'anon may not call enqueue');
reset role;
set local role authenticated;
select throws_ok(
  $$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[], '{"title":"x"}')$$,
  '42501', null, 'enqueue refuses a caller without a user id');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq(
  $$select deliveries from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"From the service"}')$$,
  array[1], 'the service role may notify anyone');
reset role;
select results_eq($$select sender_id from herald.notifications where title = 'From the service'$$,
  array[null::uuid], 'a service-sent notification has no sender');

-- register_device: a token moves to whoever registers it last.
set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select is((herald.register_device('alice-dead', 'ios')).user_id,
  '22222222-2222-4222-8222-222222222222'::uuid, 'register_device moves a token to the caller');
reset role;
select is((select disabled_at from herald.device_tokens where token = 'alice-dead'), null,
  're-registering a disabled token enables it again');
set local request.jwt.claims to '';
set local role authenticated;
select throws_ok($$select herald.register_device('t', 'ios')$$, '42501', null,
  'register_device needs a signed-in user');
reset role;

select * from finish();
rollback;
