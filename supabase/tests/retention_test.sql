-- herald.retention: how long history is kept, changed by updating a row.
-- The prune functions follow it without an argument, an argument still wins,
-- nonsense is refused, and only the service role may read or change it.
begin;
select plan(15);

select results_eq($$select name, keep from herald.retention order by name$$,
  $$values ('delivery_attempts', interval '14 days'), ('device_token_moves', interval '90 days'),
           ('device_tokens', interval '30 days'), ('hook_events', interval '7 days'),
           ('notifications', interval '30 days')$$,
  'the defaults: notifications with their deliveries 30 days, the attempt log 14, disabled device tokens 30, token moves 90, hook events 7');

-- A row changed is what the next prune keeps.
insert into herald.hook_events (id, received_at) values
  ('msg_retention_3d', now() - interval '3 days'), ('msg_retention_1h', now() - interval '1 hour');
select is(herald.prune_hook_events(), 0, 'under the 7-day default, a 3-day-old event stays');
update herald.retention set keep = interval '2 days' where name = 'hook_events';
select is(herald.prune_hook_events(), 1, 'kept 2 days, the 3-day-old event goes');
select results_eq($$select id from herald.hook_events where id like 'msg_retention_%'$$,
  $$values ('msg_retention_1h')$$, 'and the recent one stays');
select is(herald.prune_hook_events(interval '30 minutes'), 1, 'an explicit window still wins');

-- Disabled device tokens follow their row the same way.
insert into auth.users (id, email) values ('33333333-3333-4333-8333-333333333333', null);
insert into herald.device_tokens (user_id, token, platform, disabled_at) values
  ('33333333-3333-4333-8333-333333333333', 'retention-disabled-3d', 'ios', now() - interval '3 days');
select is((select deleted from herald.prune_device_tokens()), 0,
  'under the 30-day default, a token disabled 3 days ago stays');
update herald.retention set keep = interval '2 days' where name = 'device_tokens';
select is((select deleted from herald.prune_device_tokens()), 1,
  'kept 2 days, it is deleted');

update herald.retention set keep = interval '1 day' where name = 'device_token_moves';
select is(herald.retention_of('device_token_moves'), interval '1 day', 'retention_of reads the row');
select ok((select updated_at = now() from herald.retention where name = 'device_token_moves'),
  'a change is stamped');

select throws_ok($$update herald.retention set keep = interval '5 minutes' where name = 'hook_events'$$,
  '23514', null, 'less than an hour is refused');
select throws_ok($$insert into herald.retention (name, keep) values ('deliverys', interval '1 day')$$,
  '23514', null, 'an unknown kind of history is refused');
select throws_ok($$select herald.retention_of('nothing')$$, 'P0002', null,
  'retention_of names a setting that does not exist');

-- Only the service role (and the owner) may see or change it.
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok('select * from herald.retention', '42501', null, 'authenticated cannot read it');
reset role;
set local role anon;
select throws_ok($$update herald.retention set keep = interval '1 hour'$$, '42501', null,
  'anon cannot change it');
reset role;
set local role service_role;
select lives_ok($$update herald.retention set keep = interval '45 days' where name = 'device_tokens'$$,
  'the service role changes it');
reset role;

select * from finish();
rollback;
