-- enqueue over channels, dead letters and replay, token hygiene.
begin;
select plan(14);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', null);
insert into herald.device_tokens (user_id, token, platform) values
  ('11111111-1111-4111-8111-111111111111', 'alice-phone', 'ios'),
  ('22222222-2222-4222-8222-222222222222', 'bob-phone', 'android');
insert into herald.webhook_endpoints (owner_id, url, secret, disabled_at) values
  ('11111111-1111-4111-8111-111111111111', 'https://alice.example.com/hook', herald.new_webhook_secret(), null),
  ('11111111-1111-4111-8111-111111111111', 'https://alice.example.com/gone', herald.new_webhook_secret(), now());

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"All channels","channels":["push","email","webhook"]}')$$,
  array[4], 'push to every token, e-mail where there is an address, webhook to enabled endpoints');
select set_eq($$select channel || ':' || target from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'All channels'$$,
  array['push:alice-phone', 'push:bob-phone', 'email:alice@example.test',
        'webhook:https://alice.example.com/hook'],
  'the targets per channel');
select results_eq($$select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111']::uuid[], '{"title":"Default"}')$$,
  array[1], 'without channels, push only');
select throws_ok($$select herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","channels":["sms"]}')$$, '22023', null, 'an unknown channel is refused');

-- Dead letters: listed by the service role only, replayed with a fresh budget.
update herald.deliveries set status = 'dead', attempts = 8, last_error = 'attempts exhausted; last: boom'
  where target = 'alice-phone';
select results_eq($$select count(*)::int from herald.dead_letters where target = 'alice-phone'$$,
  array[2], 'dead deliveries are listed');
select results_eq($$select herald.replay_dead_letters(
    array(select id from herald.deliveries where target = 'alice-phone' limit 1))$$,
  array[1], 'replay by id');
select results_eq($$select herald.replay_dead_letters()$$, array[1], 'replay everything else');
select results_eq($$select status, attempts, last_error from herald.deliveries
    where target = 'alice-phone' limit 1$$,
  $$values ('pending', 0, 'attempts exhausted; last: boom')$$,
  'replayed rows are pending with no attempts spent, the last error kept');
select results_eq($$select herald.replay_dead_letters()$$, array[0], 'nothing left to replay');
reset role;

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok('select * from herald.dead_letters', '42501', null, 'users cannot list dead letters');
select throws_ok('select herald.replay_dead_letters()', '42501', null, 'users cannot replay');
select throws_ok('select * from herald.prune_device_tokens()', '42501', null, 'users cannot prune');
reset role;

-- Token hygiene.
insert into herald.device_tokens (user_id, token, platform, last_seen_at, disabled_at) values
  ('11111111-1111-4111-8111-111111111111', 'stale', 'android', now() - interval '271 days', null),
  ('11111111-1111-4111-8111-111111111111', 'long-dead', 'android', now(), now() - interval '31 days'),
  ('11111111-1111-4111-8111-111111111111', 'just-dead', 'android', now(), now() - interval '1 day');
select results_eq($$select disabled, deleted from herald.prune_device_tokens(interval '30 days')$$,
  $$values (1, 1)$$, 'stale tokens are disabled, tokens disabled past the retention deleted');
select set_eq($$select token || ':' || coalesce(disabled_reason, '-') from herald.device_tokens
    where token in ('stale', 'long-dead', 'just-dead')$$,
  array['stale:STALE', 'just-dead:-'], 'what is left');

select * from finish();
rollback;
