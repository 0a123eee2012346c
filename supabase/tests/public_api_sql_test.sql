-- The public API's functions: quiet_hours_end, enqueue (per-recipient denial,
-- topics, raw targets, opt-outs, quiet hours, scheduling), cancel_notification,
-- prune_idempotency_keys and the preferences time-zone check.
begin;
select plan(82);

insert into auth.users (id, email) values
  ('11111111-1111-4111-8111-111111111111', 'alice@example.test'),
  ('22222222-2222-4222-8222-222222222222', 'bob@example.test'),
  ('33333333-3333-4333-8333-333333333333', 'carol@example.test'),
  ('44444444-4444-4444-8444-444444444444', 'dave@example.test');
insert into herald.device_tokens (id, user_id, token, platform) values
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'pa-alice-phone', 'ios'),
  ('a0000000-0000-4000-8000-000000000002', '22222222-2222-4222-8222-222222222222', 'pa-bob-phone', 'android'),
  ('a0000000-0000-4000-8000-000000000003', '33333333-3333-4333-8333-333333333333', 'pa-carol-web', 'web');
insert into herald.webhook_endpoints (id, owner_id, url, secret, disabled_at) values
  ('e0000000-0000-4000-8000-000000000001', '22222222-2222-4222-8222-222222222222',
   'https://bob.example.test/hook', herald.new_webhook_secret(), null),
  ('e0000000-0000-4000-8000-000000000002', '22222222-2222-4222-8222-222222222222',
   'https://bob.example.test/gone', herald.new_webhook_secret(), now());

-- ─── quiet_hours_end: [start, end) in wall-clock time of the zone ───

select is(herald.quiet_hours_end('2026-03-10 12:00+00', 'UTC', '09:00', '17:00'),
  '2026-03-10 17:00+00'::timestamptz, 'quiet_hours_end: inside a same-day window, its end today');
select is(herald.quiet_hours_end('2026-03-10 09:00+00', 'UTC', '09:00', '17:00'),
  '2026-03-10 17:00+00'::timestamptz, 'quiet_hours_end: the start belongs to the window');
select is(herald.quiet_hours_end('2026-03-10 17:00+00', 'UTC', '09:00', '17:00'),
  '2026-03-10 17:00+00'::timestamptz, 'quiet_hours_end: the end does not (p_at is returned)');
select is(herald.quiet_hours_end('2026-03-10 08:59+00', 'UTC', '09:00', '17:00'),
  '2026-03-10 08:59+00'::timestamptz, 'quiet_hours_end: outside a same-day window, p_at');
select is(herald.quiet_hours_end('2026-03-10 23:30+00', 'UTC', '22:00', '07:00'),
  '2026-03-11 07:00+00'::timestamptz, 'quiet_hours_end: overnight window before midnight, tomorrow''s end');
select is(herald.quiet_hours_end('2026-03-11 03:00+00', 'UTC', '22:00', '07:00'),
  '2026-03-11 07:00+00'::timestamptz, 'quiet_hours_end: overnight window after midnight, today''s end');
select is(herald.quiet_hours_end('2026-03-10 12:00+00', 'UTC', '22:00', '07:00'),
  '2026-03-10 12:00+00'::timestamptz, 'quiet_hours_end: outside an overnight window, p_at');
select is(herald.quiet_hours_end('2026-03-10 23:30+00', 'UTC', null, null),
  '2026-03-10 23:30+00'::timestamptz, 'quiet_hours_end: no window, p_at');
-- 23:30 UTC on 15 Jan is 00:30 CET on 16 Jan: the local date, not the UTC one, counts.
select is(herald.quiet_hours_end('2026-01-15 23:30+00', 'Europe/Berlin', '22:00', '07:00'),
  '2026-01-16 06:00+00'::timestamptz, 'quiet_hours_end: Berlin, local date ahead of UTC');
-- 21:00 UTC on 24 Oct 2026 is 23:00 CEST; Berlin falls back to CET at 03:00 on 25 Oct,
-- so 07:00 local is 06:00 UTC (9 h later, not 8).
select is(herald.quiet_hours_end('2026-10-24 21:00+00', 'Europe/Berlin', '22:00', '07:00'),
  '2026-10-25 06:00+00'::timestamptz, 'quiet_hours_end: Berlin, window spanning the autumn DST change');
-- 22:00 UTC on 28 Mar 2026 is 23:00 CET; Berlin springs forward at 02:00 on 29 Mar,
-- so 07:00 local is 05:00 UTC.
select is(herald.quiet_hours_end('2026-03-28 22:00+00', 'Europe/Berlin', '22:00', '07:00'),
  '2026-03-29 05:00+00'::timestamptz, 'quiet_hours_end: Berlin, window spanning the spring DST change');
-- The same instant is 17:00 EDT in New York: outside the window.
select is(herald.quiet_hours_end('2026-10-24 21:00+00', 'America/New_York', '22:00', '07:00'),
  '2026-10-24 21:00+00'::timestamptz, 'quiet_hours_end: New York, same instant, outside the window');
-- 03:00 UTC on 1 Nov 2026 is 23:00 EDT on 31 Oct; New York falls back to EST at 02:00,
-- so 07:00 local on 1 Nov is 12:00 UTC.
select is(herald.quiet_hours_end('2026-11-01 03:00+00', 'America/New_York', '22:00', '07:00'),
  '2026-11-01 12:00+00'::timestamptz, 'quiet_hours_end: New York, window spanning the autumn DST change');
-- 04:00 UTC on 1 Jul 2026: 06:00 CEST in Berlin, 00:00 EDT in New York; both inside.
select is(herald.quiet_hours_end('2026-07-01 04:00+00', 'Europe/Berlin', '22:00', '07:00'),
  '2026-07-01 05:00+00'::timestamptz, 'quiet_hours_end: Berlin in summer ends at 07:00 CEST = 05:00 UTC');
select is(herald.quiet_hours_end('2026-07-01 04:00+00', 'America/New_York', '22:00', '07:00'),
  '2026-07-01 11:00+00'::timestamptz, 'quiet_hours_end: New York in summer ends at 07:00 EDT = 11:00 UTC');

-- ─── enqueue: per-recipient authorisation ───

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select results_eq($$select notification_id is not null, deliveries, denied, denied_count
    from herald.enqueue(array['11111111-1111-4111-8111-111111111111',
      '22222222-2222-4222-8222-222222222222']::uuid[], '{"title":"pa-mixed"}')$$,
  $$values (true, 1, array['22222222-2222-4222-8222-222222222222']::uuid[], 1)$$,
  'enqueue: a user''s mixed request is made for the allowed and lists only the refused id');
reset role;
select results_eq($$select sender_id from herald.notifications where title = 'pa-mixed'$$,
  array['11111111-1111-4111-8111-111111111111'::uuid],
  'enqueue: the mixed request created one notification, sent by the user');
select set_eq($$select d.recipient_id from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-mixed'$$,
  array['11111111-1111-4111-8111-111111111111'::uuid],
  'enqueue: nothing is delivered to the refused recipient');

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select notification_id is not null, deliveries, denied, denied_count
    from herald.enqueue(array['11111111-1111-4111-8111-111111111111',
      '22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333']::uuid[],
      '{"title":"pa-service"}')$$,
  $$values (true, 3, '{}'::uuid[], 0)$$,
  'enqueue: the service role notifies anyone, nobody denied');
reset role;

-- ─── enqueue: topics (service role only) ───

insert into herald.topic_subscriptions (topic, user_id) values
  ('pa.news', '22222222-2222-4222-8222-222222222222'),
  ('pa.news', '33333333-3333-4333-8333-333333333333');

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries, denied_count from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"pa-topic"}', 'req-topic', 'pa.news')$$,
  $$values (3, 0)$$, 'enqueue: a topic adds its subscribers; a named subscriber gets one delivery');
reset role;
select set_eq($$select d.recipient_id from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-topic'$$,
  array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
    '33333333-3333-4333-8333-333333333333']::uuid[],
  'enqueue: named recipients and topic subscribers are the audience');
select is((select audience from herald.notifications where title = 'pa-topic'),
  '{"user_ids": 2, "topic": "pa.news"}'::jsonb, 'enqueue: the audience records how it was named');

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x"}', null, 'pa.news')$$, '42501',
  'only the service role may notify raw targets or topics',
  'enqueue: a user may not notify a topic');
reset role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select notification_id is not null, deliveries, denied, denied_count
    from herald.enqueue('{}', '{"title":"pa-empty-topic"}', null, 'pa.empty')$$,
  $$values (true, 0, '{}'::uuid[], 0)$$,
  'enqueue: an empty topic still makes a notification, with no deliveries');
reset role;
select results_eq($$select audience from herald.notifications where title = 'pa-empty-topic'$$,
  $$values ('{"topic": "pa.empty"}'::jsonb)$$, 'enqueue: the empty topic''s notification exists');

-- ─── enqueue: raw targets (service role only) ───

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries from herald.enqueue('{}', '{"title":"pa-raw","targets":[
      {"channel":"push","token":"pa-alice-phone"},
      {"channel":"push","token":"pa-unknown-token","platform":"android"},
      {"channel":"email","address":"ops@example.test"},
      {"channel":"webhook","endpoint_id":"e0000000-0000-4000-8000-000000000001"}]}')$$,
  array[4], 'enqueue: one delivery per raw target');
select throws_ok($$select * from herald.enqueue('{}', '{"title":"pa-raw-disabled","targets":[
      {"channel":"webhook","endpoint_id":"e0000000-0000-4000-8000-000000000002"}]}')$$,
  '22023', null, 'enqueue: a disabled or unknown webhook endpoint is refused, not silently dropped');
reset role;
select results_eq($$select d.device_token_id, d.platform from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-raw' and d.target = 'pa-alice-phone'$$,
  $$values ('a0000000-0000-4000-8000-000000000001'::uuid, 'ios')$$,
  'enqueue: a raw push token that is registered links its device_tokens row and platform');
select results_eq($$select d.device_token_id, d.platform from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-raw' and d.target = 'pa-unknown-token'$$,
  $$values (null::uuid, 'android')$$,
  'enqueue: an unregistered raw push token keeps its own platform, no device_tokens row');
select results_eq($$select d.target from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-raw' and d.channel = 'email'$$,
  array['ops@example.test'], 'enqueue: a raw e-mail address becomes the target');
select results_eq($$select d.webhook_endpoint_id, d.target from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-raw' and d.channel = 'webhook'$$,
  $$values ('e0000000-0000-4000-8000-000000000001'::uuid, 'https://bob.example.test/hook')$$,
  'enqueue: a raw webhook endpoint id targets the endpoint''s URL');
select is((select count(*)::int from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-raw' and d.recipient_id is not null), 0,
  'enqueue: raw targets have no recipient');

set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","targets":[{"channel":"email","address":"x@example.test"}]}')$$, '42501',
  'only the service role may notify raw targets or topics',
  'enqueue: a user may not notify raw targets');
reset role;

-- ─── enqueue: quiet hours defer non-critical pushes only ───

-- Tokyo keeps no daylight saving time, so the arithmetic holds on any date:
-- 13:30 UTC two days from now is 22:30 in Tokyo, inside Alice's 22:00–07:00
-- window, which ends at 07:00 Tokyo = 22:00 UTC the same day. (send_at must be
-- at most 30 days ahead, so the dates are relative.)
insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end) values
  ('11111111-1111-4111-8111-111111111111', 'Asia/Tokyo', '22:00', '07:00');
create temporary table quiet_day as
  select ((current_date + 2 + time '13:30') at time zone 'UTC') as in_window,
         ((current_date + 2 + time '03:00') at time zone 'UTC') as outside,
         ((current_date + 2 + time '22:00') at time zone 'UTC') as window_end;
grant select on quiet_day to service_role;

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('title', 'pa-quiet', 'channels', '["push","email"]'::jsonb,
      'send_at', (select in_window from quiet_day)))$$,
  array[2], 'enqueue: during quiet hours deliveries are made, not dropped');
select lives_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('title', 'pa-quiet-critical', 'critical', true,
      'send_at', (select in_window from quiet_day)))$$,
  'enqueue: a critical notification during quiet hours');
select lives_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    jsonb_build_object('title', 'pa-quiet-outside', 'send_at', (select outside from quiet_day)))$$,
  'enqueue: a notification outside quiet hours');
reset role;
select is((select d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-quiet' and d.channel = 'push'),
  (select window_end from quiet_day), 'enqueue: a non-critical push waits for the quiet window''s end');
select is((select d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-quiet' and d.channel = 'email'),
  (select in_window from quiet_day), 'enqueue: quiet hours do not defer e-mail');
select is((select d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-quiet-critical' and d.channel = 'push'),
  (select in_window from quiet_day), 'enqueue: quiet hours do not defer a critical push');
select is((select d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id
    where n.title = 'pa-quiet-outside' and d.channel = 'push'),
  (select outside from quiet_day), 'enqueue: outside quiet hours a push is due at send_at');

-- ─── enqueue: scheduling ───

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries from herald.enqueue(
    array['22222222-2222-4222-8222-222222222222']::uuid[],
    jsonb_build_object('title', 'pa-later', 'send_at', now() + interval '2 hours', 'ttl_seconds', 3600))$$,
  array[1], 'enqueue: a scheduled notification gets its deliveries now');
select lives_ok($$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[],
    jsonb_build_object('title', 'pa-past', 'send_at', now() - interval '1 hour', 'ttl_seconds', 60))$$,
  'enqueue: a send_at in the past');
select lives_ok($$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"pa-now"}')$$, 'enqueue: no send_at');
reset role;
select is((select d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-later'),
  now() + interval '2 hours', 'enqueue: send_at is when the delivery becomes due');
select is((select send_at from herald.notifications where title = 'pa-later'),
  now() + interval '2 hours', 'enqueue: send_at is kept on the notification');
select is((select expires_at from herald.notifications where title = 'pa-later'),
  now() + interval '3 hours', 'enqueue: the ttl counts from send_at (expires_at = send_at + ttl)');
select results_eq($$select d.next_attempt_at, n.expires_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-past'$$,
  $$values (now(), now() + interval '60 seconds')$$,
  'enqueue: a past send_at is due now and the ttl counts from now');
select results_eq($$select n.send_at, d.next_attempt_at from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-now'$$,
  $$values (null::timestamptz, now())$$, 'enqueue: without send_at the delivery is due now');

-- ─── enqueue: channels ───

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select throws_ok($$select * from herald.enqueue(array['22222222-2222-4222-8222-222222222222']::uuid[],
    '{"title":"x","channels":["push","sms"]}')$$, '22023', null,
  'enqueue: the service role gets 22023 for an unknown channel');
reset role;
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select * from herald.enqueue(array['11111111-1111-4111-8111-111111111111']::uuid[],
    '{"title":"x","channels":["pigeon"]}')$$, '22023', null,
  'enqueue: a user gets 22023 for an unknown channel');
reset role;

-- ─── enqueue: opt-outs drop deliveries per channel and category ───

insert into herald.opt_outs (user_id, category, channel) values
  ('11111111-1111-4111-8111-111111111111', 'pa-promo', 'push'),
  ('22222222-2222-4222-8222-222222222222', '*', 'email'),
  ('33333333-3333-4333-8333-333333333333', 'other-cat', 'push');

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select results_eq($$select deliveries from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
      '33333333-3333-4333-8333-333333333333']::uuid[],
    '{"title":"pa-promo","category":"pa-promo","channels":["push","email"]}')$$,
  array[4], 'enqueue: opted-out deliveries are not made');
select lives_ok($$select * from herald.enqueue(
    array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
      '33333333-3333-4333-8333-333333333333']::uuid[],
    '{"title":"pa-uncategorised","channels":["push","email"]}')$$,
  'enqueue: an uncategorised notification to the same people');
reset role;
select set_eq($$select d.recipient_id || ':' || d.channel from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-promo'$$,
  array['11111111-1111-4111-8111-111111111111:email', '22222222-2222-4222-8222-222222222222:push',
    '33333333-3333-4333-8333-333333333333:push', '33333333-3333-4333-8333-333333333333:email'],
  'enqueue: a category opt-out drops that channel only, ''*'' drops it for every category');
select set_eq($$select d.recipient_id || ':' || d.channel from herald.deliveries d
    join herald.notifications n on n.id = d.notification_id where n.title = 'pa-uncategorised'$$,
  array['11111111-1111-4111-8111-111111111111:push', '11111111-1111-4111-8111-111111111111:email',
    '22222222-2222-4222-8222-222222222222:push',
    '33333333-3333-4333-8333-333333333333:push', '33333333-3333-4333-8333-333333333333:email'],
  'enqueue: without a category only ''*'' opt-outs apply');

-- ─── cancel_notification ───

insert into herald.notifications (id, sender_id, title) values
  ('c0000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'pa-cancel'),
  ('c0000000-0000-4000-8000-000000000002', null, 'pa-cancel-service');
insert into herald.deliveries
  (id, notification_id, recipient_id, channel, target, status, sent_at, updated_at, locked_until) values
  ('d0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000001',
   '22222222-2222-4222-8222-222222222222', 'push', 'pa-bob-phone', 'pending', null,
   now() - interval '1 hour', now() + interval '1 minute'),
  ('d0000000-0000-4000-8000-000000000002', 'c0000000-0000-4000-8000-000000000001',
   '22222222-2222-4222-8222-222222222222', 'email', 'bob@example.test', 'pending', null,
   now() - interval '1 hour', null),
  ('d0000000-0000-4000-8000-000000000003', 'c0000000-0000-4000-8000-000000000001',
   '33333333-3333-4333-8333-333333333333', 'push', 'pa-carol-web', 'sent', now() - interval '1 hour',
   now() - interval '1 hour', null),
  ('d0000000-0000-4000-8000-000000000004', 'c0000000-0000-4000-8000-000000000002',
   '22222222-2222-4222-8222-222222222222', 'push', 'pa-bob-phone', 'pending', null,
   now() - interval '1 hour', null);

set local request.jwt.claims to '{"sub":"22222222-2222-4222-8222-222222222222","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select herald.cancel_notification('c0000000-0000-4000-8000-000000000001')$$,
  'P0002', null, 'cancel_notification: a recipient may not cancel');
reset role;
set local request.jwt.claims to '{"sub":"44444444-4444-4444-8444-444444444444","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select herald.cancel_notification('c0000000-0000-4000-8000-000000000001')$$,
  'P0002', null, 'cancel_notification: another user may not cancel');
reset role;
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select herald.cancel_notification('c0000000-0000-4000-8000-000000000002')$$,
  'P0002', null, 'cancel_notification: a user may not cancel a service notification');
select is(herald.cancel_notification('c0000000-0000-4000-8000-000000000001'), 1,
  'cancel_notification: the sender cancels what is pending (not what is being sent) and gets the count');
select is(herald.cancel_notification('c0000000-0000-4000-8000-000000000001'), 0,
  'cancel_notification: cancelling again stops nothing more');
reset role;
select results_eq($$select id, status, last_error, locked_until from herald.deliveries
    where notification_id = 'c0000000-0000-4000-8000-000000000001' order by id$$,
  $$values
    ('d0000000-0000-4000-8000-000000000001'::uuid, 'pending', null, now() + interval '1 minute'),
    ('d0000000-0000-4000-8000-000000000002'::uuid, 'cancelled', 'cancelled by the sender', null::timestamptz),
    ('d0000000-0000-4000-8000-000000000003'::uuid, 'sent', null, null::timestamptz)$$,
  'cancel_notification: idle pending deliveries become cancelled; a leased one (in flight) is left to finish');
select is((select updated_at from herald.deliveries where id = 'd0000000-0000-4000-8000-000000000003'),
  now() - interval '1 hour', 'cancel_notification: an already-sent delivery is untouched');
set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select is(herald.cancel_notification('c0000000-0000-4000-8000-000000000002'), 1,
  'cancel_notification: the service role may cancel');
reset role;

-- ─── prune_idempotency_keys ───

insert into herald.idempotency_keys (caller, key, request_hash, created_at) values
  ('key:pa-test', 'pa-old', 'h', now() - interval '25 hours'),
  ('key:pa-test', 'pa-mid', 'h', now() - interval '3 hours'),
  ('key:pa-test', 'pa-new', 'h', now() - interval '10 minutes');

set local request.jwt.claims to '{"role":"service_role"}';
set local role service_role;
select is(herald.prune_idempotency_keys(), 1, 'prune_idempotency_keys: by default, keys older than 24 h go');
select set_eq($$select key from herald.idempotency_keys where caller = 'key:pa-test'$$,
  array['pa-mid', 'pa-new'], 'prune_idempotency_keys: younger keys stay');
select is(herald.prune_idempotency_keys(interval '1 hour'), 1,
  'prune_idempotency_keys: keys older than the given interval go');
select set_eq($$select key from herald.idempotency_keys where caller = 'key:pa-test'$$,
  array['pa-new'], 'prune_idempotency_keys: only keys younger than the interval stay');
reset role;
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$select herald.prune_idempotency_keys()$$, '42501',
  'permission denied for function prune_idempotency_keys',
  'prune_idempotency_keys: authenticated may not execute it');
reset role;

-- ─── preferences: time zone and quiet-hours checks ───

select is(herald.is_time_zone('Europe/Berlin'), true, 'is_time_zone: an IANA zone is known');
select is(herald.is_time_zone('Mars/Olympus_Mons'), false, 'is_time_zone: an invented zone is not');
select is((select count(*)::int from pg_timezone_names z
    where not (herald.is_time_zone(z.name) and herald.is_time_zone(lower(z.name))
               and herald.is_time_zone(upper(z.name)))), 0,
  'is_time_zone: every zone pg_timezone_names lists is known, in any case');
select is(array(select z from unnest(array['UTC+5', 'EST5', 'Nowhere/X0', 'Etc/GMT+13', '<+03>-3',
    '+5', '-08:00', 'PST', 'Europe/Paris ', '../etc/passwd', 'Europe//Paris', '', null]) z
    where herald.is_time_zone(z) is distinct from false), '{}'::text[],
  'is_time_zone: POSIX rules, offsets, abbreviations and paths are not zones');
select is(array(select z from unnest(array['Etc/GMT+5', 'etc/gmt-14', 'EST5EDT', 'GMT0', 'Zulu', 'utc']) z
    where not herald.is_time_zone(z)), '{}'::text[],
  'is_time_zone: zones whose names have digits or no region are known');
set local timezone = 'Asia/Tokyo';
select is((with c as materialized (select herald.is_time_zone('America/Lima') as known)
    select known::text || ' ' || current_setting('TimeZone') from c),
  'true Asia/Tokyo', 'is_time_zone: the session''s time zone is left as it was');
reset timezone;
select throws_ok($$insert into herald.preferences (user_id, time_zone)
    values ('44444444-4444-4444-8444-444444444444', 'Mars/Olympus_Mons')$$, '23514',
  'new row for relation "preferences" violates check constraint "preferences_time_zone_check"',
  'preferences: an unknown time zone is refused');
select throws_ok($$insert into herald.preferences (user_id, quiet_start)
    values ('44444444-4444-4444-8444-444444444444', '22:00')$$, '23514', null,
  'preferences: a quiet-hours start needs an end');
select throws_ok($$insert into herald.preferences (user_id, quiet_start, quiet_end)
    values ('44444444-4444-4444-8444-444444444444', '22:00', '22:00')$$, '23514', null,
  'preferences: an empty quiet-hours window is refused');
select lives_ok($$insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end)
    values ('44444444-4444-4444-8444-444444444444', 'America/New_York', '23:00', '06:30')$$,
  'preferences: a known zone and a proper window are accepted');

-- ─── can_subscribe and the lossless trigger path ───

select is(herald.can_subscribe('11111111-1111-4111-8111-111111111111', 'news'), true,
  'can_subscribe: users may join plain topics');
select is(herald.can_subscribe('11111111-1111-4111-8111-111111111111', 'org:acme:admins'), false,
  'can_subscribe: namespaced topics are for services to manage');
set local request.jwt.claims to '{"sub":"11111111-1111-4111-8111-111111111111","role":"authenticated"}';
set local role authenticated;
select throws_ok($$insert into herald.topic_subscriptions (topic, user_id)
    values ('org:acme:admins', '11111111-1111-4111-8111-111111111111')$$,
  '42501', null, 'a user cannot subscribe themself to a namespaced topic');
reset role;

-- A direct database session (no JWT claims, no API role), as a backend's
-- trigger or pg_cron runs: enqueue treats it as the service.
set local request.jwt.claims to '';
create temp table pa_orders (id int, user_id uuid);
create function pg_temp.pa_notify_order() returns trigger language plpgsql as $$
begin
  perform herald.enqueue(array[new.user_id], jsonb_build_object('title', 'pa-order ' || new.id));
  return new;
end $$;
create trigger pa_orders_notify after insert on pa_orders
  for each row execute function pg_temp.pa_notify_order();
insert into pa_orders values (1, '11111111-1111-4111-8111-111111111111');
select results_eq($$select sender_id is null, (select count(*)::int from herald.deliveries d
    where d.notification_id = n.id) > 0 from herald.notifications n where n.title = 'pa-order 1'$$,
  $$values (true, true)$$,
  'a trigger in a session without claims enqueues in the same transaction, as the service');
select is((select count(*)::int from herald.notifications where title = 'pa-order 1'), 1,
  'exactly one notification per inserted row');

select * from finish();
rollback;
