-- The audit of device tokens moving between users stays bounded: one row per
-- token and direction however often it moves, and moves older than the
-- retention are pruned.
begin;
select plan(6);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');

-- Twenty registrations of one token, alternating between the two accounts.
create function pg_temp.register_as(p_user uuid) returns void language plpgsql as $$
begin
  perform set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
  perform herald.register_device('passed-around', 'android');
  reset role;
end;
$$;
select pg_temp.register_as(case when i % 2 = 1 then '11111111-1111-4111-8111-111111111111'::uuid
    else '22222222-2222-4222-8222-222222222222'::uuid end)
from generate_series(1, 20) i;

select results_eq($$select from_user_id, to_user_id, moves from herald.device_token_moves
    where token_sha256 = encode(extensions.digest('passed-around', 'sha256'), 'hex')
    order by moves desc$$,
  $$values ('11111111-1111-4111-8111-111111111111'::uuid, '22222222-2222-4222-8222-222222222222'::uuid, 10),
           ('22222222-2222-4222-8222-222222222222'::uuid, '11111111-1111-4111-8111-111111111111'::uuid, 9)$$,
  'nineteen moves between two accounts are two rows that count them');
select is((select user_id from herald.device_tokens where token = 'passed-around'),
  '22222222-2222-4222-8222-222222222222'::uuid, 'the last registration holds the token');
select ok((select bool_and(first_moved_at <= moved_at) from herald.device_token_moves),
  'each row keeps its first and last move');

update herald.device_token_moves set moved_at = now() - interval '91 days', first_moved_at = now() - interval '100 days'
where from_user_id = '11111111-1111-4111-8111-111111111111';
set local role service_role;
select is(herald.prune_device_token_moves(), 1, 'moves last seen over 90 days ago are pruned');
reset role;
select is((select count(*)::int from herald.device_token_moves
    where token_sha256 = encode(extensions.digest('passed-around', 'sha256'), 'hex')), 1,
  'the recent direction stays');

set local role authenticated;
select throws_ok('select herald.prune_device_token_moves()', '42501', null,
  'users cannot prune the audit');
reset role;

select * from finish();
rollback;
