-- Issue 10's SQL guarantees, each on its own: the service decided by role,
-- enqueue's limits, webhook URL checks, senders kept from targets, token moves.
begin;
select plan(59);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.device_tokens (user_id, token, platform, created_at, last_seen_at) values
  ('22222222-2222-4222-8222-222222222222', 'cs-bob-phone', 'android',
   now() - interval '30 days', now() - interval '1 day');
insert into herald.webhook_endpoints (id, owner_id, url, secret) values
  ('e0000000-0000-4000-8000-0000000000b0', '22222222-2222-4222-8222-222222222222',
   'https://bob.example.test/hook', herald.new_webhook_secret());

-- ─── the service is a role, not a claim ───

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"service_role"}';
set local role authenticated;
select is(herald.is_service(), false, 'is_service: a service_role claim in an authenticated session is not the service');
select throws_ok($$select * from herald.enqueue(null,
    '{"title":"x","targets":[{"channel":"email","address":"x@example.test"}]}')$$, '42501', null,
  'enqueue: a forged service_role claim cannot notify raw targets');
select throws_ok($$select * from herald.rotate_webhook_secret('e0000000-0000-4000-8000-0000000000b0')$$,
  'P0002', null, 'rotate_webhook_secret: a forged claim cannot rotate another user''s secret');
select results_eq($$select owner_id from herald.create_webhook_endpoint('https://forged.example.com/',
    '22222222-2222-4222-8222-222222222222')$$,
  array['11111111-1111-4111-8111-111111111111'::uuid],
  'create_webhook_endpoint: a forged claim cannot choose the owner');
reset role;
set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select is(herald.is_service(), true, 'is_service: the service_role role is the service');
reset role;
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
select is(herald.is_service(), false, 'is_service: a trusted session narrowed to a user by its claims is that user');
set local request.jwt.claims to '';
select is(herald.is_service(), true, 'is_service: a direct connection without claims (pg_cron, a backend) is trusted');

-- ─── enqueue enforces the API's limits ───

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('title', 'x', 'send_at', now() + interval '31 days'))$$, '22023', null,
  'enqueue: send_at more than 30 days ahead is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","send_at":"1999-12-31T00:00:00Z"}')$$, '22023', null,
  'enqueue: send_at before 2000 is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","send_at":"next tuesday"}')$$, '22023', null,
  'enqueue: a send_at that is not a time is a 22023, not a cast error');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('title', repeat('t', 1025)))$$, '22023', null,
  'enqueue: a title over 1024 characters is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('body', repeat('b', 4097)))$$, '22023', null,
  'enqueue: a body over 4096 characters is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","image":"javascript:alert(1)"}')$$, '22023', null,
  'enqueue: an image that is not http(s) is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"data":{"n":1}}')$$, '22023', null, 'enqueue: a data value that is not a string is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"data":{"google.x":"1"}}')$$, '22023', null, 'enqueue: a reserved data key is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"category":"x"}')$$, '22023', null, 'enqueue: a notification that says nothing is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","ttl_seconds":1.5}')$$, '22023', null, 'enqueue: a fractional ttl_seconds is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","ttl_seconds":-1}')$$, '22023', null, 'enqueue: a negative ttl_seconds is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","ttl_seconds":2419201}')$$, '22023', null, 'enqueue: a ttl_seconds over 28 days is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","priority":"urgent"}')$$, '22023', null, 'enqueue: an unknown priority is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","category":"Not A Category"}')$$, '22023', null, 'enqueue: a malformed category is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","colour":"red"}')$$, '22023', null, 'enqueue: an unknown content field is refused');
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","overrides":{"andriod":{}}}')$$, '22023', null, 'enqueue: an unknown overrides key is refused');
select throws_ok($$select * from herald.enqueue(
    (select array_agg(gen_random_uuid()) from generate_series(1, 10001)),
    '{"title":"x"}')$$, '22023', null, 'enqueue: more than 10,000 recipients are refused');
select lives_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"cs-android-alone","overrides":{"android":{"priority":"high"}}}')$$,
  'enqueue: overrides.android alone is accepted');
select lives_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"cs-email-service","overrides":{"email":{"subject":"S","html":"<p>H</p>"}}}')$$,
  'enqueue: the service role may set overrides.email');
select herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"cs-ttl0","ttl_seconds":0}');
select results_eq($$select now_or_never, expires_at = now() from herald.notifications
    where title = 'cs-ttl0'$$,
  $$values (true, true)$$, 'enqueue: ttl_seconds 0 is kept as now or never');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","overrides":{"email":{"subject":"Your password expired","html":"<a href=x>"}}}')$$,
  '42501', null, 'enqueue: a user may not set overrides.email');
select lives_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"cs-user-apns","overrides":{"apns":{"payload":{"aps":{"badge":1}}}}}')$$,
  'enqueue: a user may set push overrides');
reset role;

-- ─── webhook URLs are checked on every insert and change ───

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select herald.create_webhook_endpoint('https://user:pass@alice.example.com/')$$,
  '22023', null, 'webhook URL: credentials are refused');
select throws_ok($$select herald.create_webhook_endpoint('http://127.0.0.1:8080/')$$, '22023', null,
  'webhook URL: loopback is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://10.1.2.3/')$$, '22023', null,
  'webhook URL: a private address is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://169.254.169.254/latest/')$$, '22023', null,
  'webhook URL: link-local (cloud metadata) is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://[::1]/')$$, '22023', null,
  'webhook URL: IPv6 loopback is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://[fe80::1]/')$$, '22023', null,
  'webhook URL: IPv6 link-local is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://localhost:3000/')$$, '22023', null,
  'webhook URL: localhost is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://127.1/')$$, '22023', null,
  'webhook URL: a shortened IPv4 spelling is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://2130706433/')$$, '22023', null,
  'webhook URL: a decimal IPv4 spelling is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://0x7f000001/')$$, '22023', null,
  'webhook URL: a hexadecimal IPv4 spelling is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://metadata.google.internal/')$$, '22023', null,
  'webhook URL: a private-use name is refused');
select throws_ok($$select herald.create_webhook_endpoint('http://redis/')$$, '22023', null,
  'webhook URL: a single-label name is refused');
select lives_ok($$select herald.create_webhook_endpoint('https://93.184.215.14/hook')$$,
  'webhook URL: a public IPv4 literal is accepted');
select throws_ok($$update herald.webhook_endpoints set url = 'http://192.168.1.1/'$$, '22023', null,
  'webhook URL: re-pointing an endpoint to a private address is refused');
reset role;
set local herald.webhook_allow_hosts to '127.0.0.1:54329';
select lives_ok($$select herald.create_webhook_endpoint('http://127.0.0.1:54329/hook',
    '11111111-1111-4111-8111-111111111111')$$, 'webhook URL: an allow-listed host:port passes');
select throws_ok($$select herald.create_webhook_endpoint('http://127.0.0.1:5432/',
    '11111111-1111-4111-8111-111111111111')$$, '22023', null,
  'webhook URL: the allow-listed host on another port is refused');
update herald.webhook_endpoints set disabled_at = now(), disabled_reason = 'GONE'
  where id = 'e0000000-0000-4000-8000-0000000000b0';
update herald.webhook_endpoints set url = 'https://bob.example.test/v2'
  where id = 'e0000000-0000-4000-8000-0000000000b0';
select is((select disabled_at from herald.webhook_endpoints
    where id = 'e0000000-0000-4000-8000-0000000000b0'), null,
  'webhook URL: re-pointing a disabled endpoint re-enables it');

-- ─── rotation overlap is capped ───

select throws_ok($$select herald.rotate_webhook_secret('e0000000-0000-4000-8000-0000000000b0',
    interval '8 days')$$, '22023', null, 'rotate_webhook_secret: an overlap over 7 days is refused');
select throws_ok($$select herald.rotate_webhook_secret('e0000000-0000-4000-8000-0000000000b0',
    interval '-1 hour')$$, '22023', null, 'rotate_webhook_secret: a negative overlap is refused');

-- ─── senders never read their recipients' targets ───

-- A project that lets anyone notify anyone.
create or replace function herald.can_notify(p_sender uuid, p_recipient uuid) returns boolean
language sql stable set search_path = '' as $$ select true $$;
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select lives_ok($$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"cs-to-bob","channels":["push","email","webhook"]}')$$, 'a widened can_notify lets Alice notify Bob');
select throws_ok($$select target from herald.deliveries$$, '42501', null,
  'a sender cannot select deliveries.target');
select is((select count(*)::int from herald.deliveries d join herald.notifications n
    on n.id = d.notification_id where n.title = 'cs-to-bob'), 3,
  'the sender still sees the deliveries, without their targets');
select is((select count(*)::int from herald.my_delivery_targets), 0,
  'the sender sees none of Bob''s targets through my_delivery_targets');
reset role;
set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select set_eq($$select t.target from herald.my_delivery_targets t
    join herald.deliveries d on d.id = t.delivery_id
    join herald.notifications n on n.id = d.notification_id where n.title = 'cs-to-bob'$$,
  array['cs-bob-phone', 'bob@example.test', 'https://bob.example.test/v2'],
  'the recipient reads their own targets');
reset role;

-- ─── a token moving to another user ───

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
create temporary table moved as select * from herald.register_device('cs-bob-phone', 'android');
select ok((select created_at = now() and last_seen_at = now() and disabled_at is null from moved),
  'register_device: a token of another user answers as a new registration');
reset role;
select isnt((select id from moved), (select device_token_id from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'cs-to-bob' and d.channel = 'push'),
  'register_device: the moved token is a new row, not the previous owner''s');
select results_eq($$select from_user_id, to_user_id, cancelled_deliveries from herald.device_token_moves
    where token_sha256 = encode(extensions.digest('cs-bob-phone', 'sha256'), 'hex')$$,
  $$values ('22222222-2222-4222-8222-222222222222'::uuid, '11111111-1111-4111-8111-111111111111'::uuid, 1)$$,
  'register_device: the move is audited, with the token hashed');
select is((select status from herald.deliveries d join herald.notifications n on n.id = d.notification_id
    where n.title = 'cs-to-bob' and d.channel = 'push'), 'cancelled',
  'register_device: the previous owner''s pending pushes do not reach the new holder');

-- ─── hook rule templates may carry overrides ───

select lives_ok($$insert into herald.hook_rules (name, table_name, event, template) values
    ('cs-android', 'orders', 'INSERT',
     '{"recipients":["{{record.user_id}}"],"title":"t","overrides":{"android":{"priority":"high"}}}')$$,
  'hook_rules: a template with overrides.android alone is accepted');
select throws_ok($$insert into herald.hook_rules (name, table_name, event, template) values
    ('cs-bad', 'orders', 'INSERT', '{"recipients":[],"overrides":{"andriod":{}}}')$$, '23514', null,
  'hook_rules: a template with an unknown overrides key is refused');

select * from finish();
rollback;
