-- RLS matrix for herald.webhook_endpoints and its functions: anon, the owner, another user, the service role.
begin;
select plan(16);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');

-- anon: nothing.
set local role anon;
select throws_ok('select * from herald.webhook_endpoints', '42501', null, 'anon cannot select');
select throws_ok($$select herald.create_webhook_endpoint('https://example.com/hook')$$, '42501', null,
  'anon cannot create an endpoint');
reset role;

-- The owner creates through the function, which generates the secret.
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select ok((select secret ~ '^whsec_[A-Za-z0-9+/]{32}$'
  from herald.create_webhook_endpoint('https://alice.example.com/hook',
    '22222222-2222-4222-8222-222222222222')),
  'create_webhook_endpoint returns a whsec_ secret of 24 random bytes');
select results_eq($$select owner_id from herald.webhook_endpoints$$,
  array['11111111-1111-4111-8111-111111111111'::uuid],
  'a user always owns what they create, whatever p_owner says');
select throws_ok($$insert into herald.webhook_endpoints (owner_id, url, secret)
  values ('11111111-1111-4111-8111-111111111111', 'https://x.example.com',
    'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')$$, '42501', null,
  'users cannot insert directly (and so cannot choose a weak secret)');
select throws_ok($$update herald.webhook_endpoints set secret = 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'$$,
  '42501', null, 'users cannot set a secret by hand');
select results_eq($$with u as (update herald.webhook_endpoints set url = 'https://alice.example.com/v2'
  returning 1) select count(*)::int from u$$, array[1], 'the owner can re-point their endpoint');
select isnt((select secret from herald.rotate_webhook_secret(
    (select id from herald.webhook_endpoints limit 1), interval '1 hour')),
  (select previous_secret from herald.webhook_endpoints limit 1),
  'rotation keeps the old secret as previous_secret beside a new one');
select throws_ok($$update herald.webhook_endpoints set url = 'ftp://alice.example.com'$$, '22023', null,
  'only http(s) URLs');
reset role;

-- Another user.
set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq('select count(*)::int from herald.webhook_endpoints', array[0],
  'another user sees no endpoint of alice');
select results_eq($$with u as (update herald.webhook_endpoints set url = 'https://evil.example.com'
  returning 1) select count(*)::int from u$$, array[0], 'another user cannot re-point it');
select results_eq($$with d as (delete from herald.webhook_endpoints returning 1)
  select count(*)::int from d$$, array[0], 'another user cannot delete it');
select throws_ok($$select herald.rotate_webhook_secret(
  (select id from herald.webhook_endpoints limit 1))$$, 'P0002', null,
  'another user cannot rotate what they cannot see');
reset role;

-- The service role creates for any owner and sees everything.
set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select owner_id from herald.create_webhook_endpoint('https://bob.example.com/hook',
  '22222222-2222-4222-8222-222222222222')$$, array['22222222-2222-4222-8222-222222222222'::uuid],
  'the service role creates an endpoint for an owner');
select results_eq($$select count(*)::int from herald.webhook_endpoints
  where owner_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$,
  array[2], 'the service role sees every endpoint');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$with d as (delete from herald.webhook_endpoints returning 1)
  select count(*)::int from d$$, array[1], 'the owner can delete their endpoint');
reset role;

select * from finish();
rollback;
