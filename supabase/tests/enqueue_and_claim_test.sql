-- enqueue_and_claim: notify's inline claim made as the rows are written.
begin;
select plan(12);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test');
insert into herald.device_tokens (user_id, token, platform) values
  ('11111111-1111-4111-8111-111111111111', 'alice-phone', 'ios'),
  ('11111111-1111-4111-8111-111111111111', 'alice-tablet', 'android'),
  ('22222222-2222-4222-8222-222222222222', 'bob-phone', 'android');
-- Bob is in quiet hours all day but the last minute.
insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end) values
  ('22222222-2222-4222-8222-222222222222', 'UTC',
   (now() at time zone 'UTC')::time - interval '1 minute',
   (now() at time zone 'UTC')::time - interval '2 minutes');

-- A user's request, through this (superuser) login: the dispatcher's kind.
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;

create temp table answer on commit drop as
select * from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"Inline"}', 'req-1', null, interval '60 seconds', 10);
select is((select jsonb_array_length(claimed) from answer), 2, 'both deliveries come back claimed');
select is((select deliveries from answer), 2, 'and are counted as enqueued');
reset role;
select results_eq($$select attempts, locked_until > now() + interval '59 seconds',
    next_attempt_at = locked_until, locked_until::text = any(
      select c ->> 'lease' from answer, jsonb_array_elements(answer.claimed) c)
    from herald.deliveries d where d.notification_id = (select notification_id from answer)$$,
  $$values (1, true, true, true), (1, true, true, true)$$,
  'written as claimDue leaves them: attempt 1, leased, due when the lease ends, the lease returned');
select is((select c -> 'title' #>> '{}' from answer, jsonb_array_elements(answer.claimed) c limit 1),
  'Inline', 'each carries its notification''s content');
set local role authenticated;

select is((select claimed from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"Too many"}', null, null, interval '60 seconds', 1)), null,
  'more deliveries than the inline attempt takes: none is claimed');
select is((select claimed from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"Plain"}')), null, 'without a lease, nothing is claimed');

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
create temp table quiet on commit drop as
select * from herald.enqueue_and_claim(
  array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
  '{"title":"Quiet"}', null, null, interval '60 seconds', 10);
select is((select jsonb_array_length(claimed) from quiet), 2,
  'a delivery held back by quiet hours is left for the dispatcher; the due ones are claimed');
reset role;
select results_eq($$select attempts, locked_until is null from herald.deliveries
    where notification_id = (select notification_id from quiet) and target = 'bob-phone'$$,
  $$values (0, true)$$, 'the quiet-hours delivery is pending, unclaimed');
set local role service_role;

select throws_ok($$select * from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"x"}', null, null, interval '2 hours', 10)$$, '22023', null,
  'a lease longer than an hour is refused');
select throws_ok($$select * from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"x"}', null, null, interval '0', 10)$$, '22023', null, 'a lease of nothing is refused');

-- PostgREST's login may not claim, whatever role a request switches to.
reset role;
set local session authorization authenticator;
set local role service_role;
select throws_ok($$select * from herald.enqueue_and_claim(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"x"}', null, null, interval '60 seconds', 10)$$, '42501',
  'only the dispatcher''s login may claim deliveries for an inline attempt',
  'a login that may not update the outbox cannot claim through enqueue');
select is((select deliveries from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
  '{"title":"Through the API"}')), 2, 'and enqueues as before without a lease');

select * from finish();
rollback;
