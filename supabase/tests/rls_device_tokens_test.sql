-- RLS matrix for herald.device_tokens: anon, the owner, another user, the service role.
begin;
select plan(19);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.device_tokens (id, user_id, token, platform) values
  ('aaaaaaaa-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'alice-token', 'ios');

-- anon: no access to the schema at all.
set local role anon;
select throws_ok('select * from herald.device_tokens', '42501', null, 'anon cannot select');
select throws_ok($$insert into herald.device_tokens (user_id, token, platform)
  values ('11111111-1111-4111-8111-111111111111', 'x', 'ios')$$, '42501', null, 'anon cannot insert');
select throws_ok($$update herald.device_tokens set platform = 'web' where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$, '42501', null, 'anon cannot update');
select throws_ok('delete from herald.device_tokens', '42501', null, 'anon cannot delete');
reset role;

-- The owner.
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.device_tokens where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$, array[1], 'owner sees their token');
-- Users register through herald.register_device only: a direct insert or
-- update of a token another user holds would fail on the unique key and so
-- tell them it exists.
select throws_ok($$insert into herald.device_tokens (id, user_id, token, platform)
  values ('aaaaaaaa-0000-4000-8000-000000000002', '11111111-1111-4111-8111-111111111111', 'alice-2', 'web')$$,
  '42501', null, 'owner cannot insert directly (register_device does it)');
select throws_ok($$update herald.device_tokens set platform = 'android'
  where id = 'aaaaaaaa-0000-4000-8000-000000000001'$$, '42501', null,
  'owner cannot update directly');
select throws_ok($$update herald.device_tokens set user_id = '22222222-2222-4222-8222-222222222222'
  where id = 'aaaaaaaa-0000-4000-8000-000000000001'$$, '42501', null,
  'owner cannot hand a token to someone else by update');
select results_eq($$select platform from herald.register_device('alice-2', 'web')$$,
  array['web'], 'owner registers through register_device');
select results_eq($$with d as (delete from herald.device_tokens
  where token = 'alice-2' returning 1) select count(*)::int from d$$,
  array[1], 'owner can delete their token');
reset role;

-- Another user.
set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select results_eq($$select count(*)::int from herald.device_tokens where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$, array[0], 'another user sees nothing');
select throws_ok($$insert into herald.device_tokens (user_id, token, platform)
  values ('11111111-1111-4111-8111-111111111111', 'planted', 'ios')$$, '42501', null,
  'another user cannot insert a token for the owner');
select throws_ok($$insert into herald.device_tokens (user_id, token, platform)
  values ('22222222-2222-4222-8222-222222222222', 'alice-token', 'ios')$$, '42501', null,
  'another user''s token inserted directly is a permission error, not a unique-key error');
select throws_ok($$update herald.device_tokens set token = 'alice-token'$$, '42501', null,
  'nor can an update probe for it');
select results_eq($$with d as (delete from herald.device_tokens where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222') returning 1)
  select count(*)::int from d$$, array[0], 'another user deletes nothing');
reset role;

-- The service role bypasses RLS.
set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select count(*)::int from herald.device_tokens where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222')$$, array[1], 'service role sees every token');
select lives_ok($$insert into herald.device_tokens (id, user_id, token, platform)
  values ('aaaaaaaa-0000-4000-8000-000000000003', '22222222-2222-4222-8222-222222222222', 'bob-1', 'android')$$,
  'service role can insert for anyone');
select results_eq($$with u as (update herald.device_tokens set platform = 'web' where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222') returning 1)
  select count(*)::int from u$$, array[2], 'service role can update any token');
select results_eq($$with d as (delete from herald.device_tokens where user_id in ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222') returning 1)
  select count(*)::int from d$$, array[2], 'service role can delete any token');
reset role;

select * from finish();
rollback;
