-- A delivery's user, device token and webhook endpoint: cleared from the
-- outbox when they are deleted (triggers, where foreign keys were). What
-- still waits for a deleted token or user is cancelled, not sent to the
-- address it kept; what is in flight is left to its result.
begin;
select plan(9);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.device_tokens (user_id, token, platform) values
  ('11111111-1111-4111-8111-111111111111', 'refs-alice-phone', 'ios'),
  ('22222222-2222-4222-8222-222222222222', 'refs-bob-phone', 'android');
insert into herald.webhook_endpoints (owner_id, url, secret) values
  ('11111111-1111-4111-8111-111111111111', 'https://refs.alice.example.com/hook', herald.new_webhook_secret());

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select is((select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"Refs","channels":["push","webhook"]}')), 3, 'two pushes and a webhook');
select is((select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"In flight"}')), 2, 'two pushes more');
reset role;
-- The second notification's pushes are in flight: a dispatcher holds them.
update herald.deliveries d set locked_until = now() + interval '1 minute', attempts = 1
from herald.notifications n
where n.id = d.notification_id and n.created_at = d.created_at and n.title = 'In flight';

delete from herald.device_tokens where token = 'refs-alice-phone';
select results_eq($$select device_token_id is null from herald.deliveries where target = 'refs-alice-phone'$$,
  array[true, true], 'a deleted device token is cleared from its deliveries');
select results_eq($$select d.status, d.last_error from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id and n.created_at = d.created_at
    where d.target = 'refs-alice-phone' order by n.title$$,
  $$values ('pending', null), ('cancelled', 'its device token was deleted')$$,
  'its waiting push is cancelled; the one in flight is left to its result');
delete from herald.webhook_endpoints where url = 'https://refs.alice.example.com/hook';
select results_eq($$select webhook_endpoint_id is null from herald.deliveries where target = 'https://refs.alice.example.com/hook'$$,
  array[true], 'a deleted webhook endpoint is cleared from its deliveries');
delete from auth.users where id = '22222222-2222-4222-8222-222222222222';
select results_eq($$select recipient_id is null, device_token_id is null from herald.deliveries
    where target = 'refs-bob-phone'$$,
  $$values (true, true), (true, true)$$,
  'a deleted user is cleared from their deliveries (and their token with them)');
select results_eq($$select d.status, d.last_error from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id and n.created_at = d.created_at
    where d.target = 'refs-bob-phone' order by n.title$$,
  $$values ('pending', null), ('cancelled', 'its recipient was deleted')$$,
  'their waiting push is cancelled; the one in flight is left to its result');
select results_eq($$select count(*)::int from herald.deliveries where recipient_id = '11111111-1111-4111-8111-111111111111'$$,
  array[3], 'other deliveries keep theirs');
select results_eq($$select d.status from herald.deliveries d
    where d.target = 'https://refs.alice.example.com/hook'$$,
  array['pending'], 'a deleted webhook endpoint''s delivery is not cancelled here (the dispatcher settles it)');

select * from finish();
rollback;
