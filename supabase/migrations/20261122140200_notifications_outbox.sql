-- A notification: what to say, said once, to one or more recipients.
create table herald.notifications (
  id uuid primary key default gen_random_uuid(),
  -- The user who asked; null when a service (service role, the database) did.
  sender_id uuid references auth.users (id) on delete set null,
  title text check (length(title) <= 1024),
  body text check (length(body) <= 4096),
  image text check (length(image) <= 2048),
  -- FCM data payload: a flat map of string values.
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object'),
  category text check (length(category) <= 64),
  priority text not null default 'normal' check (priority in ('normal', 'high')),
  -- Per-platform FCM overrides: {"android": {...}, "apns": {...}, "webpush": {...}}.
  overrides jsonb not null default '{}' check (jsonb_typeof(overrides) = 'object'),
  -- After this instant a delivery not yet sent becomes 'expired' instead of arriving late.
  expires_at timestamptz,
  request_id text check (length(request_id) <= 128),
  created_at timestamptz not null default now()
);

comment on table herald.notifications is
  'Requested notifications. Senders and recipients read them; only herald.enqueue and the service role write.';

create index notifications_sender_id_idx on herald.notifications (sender_id);

-- The outbox: one row per (notification, target). The dispatcher claims rows
-- whose next_attempt_at has come; a claim pushes next_attempt_at to the end of
-- the lease (locked_until), so a crashed dispatcher's rows come back by
-- themselves and one partial index serves every claim.
create table herald.deliveries (
  id uuid primary key default gen_random_uuid(),
  notification_id uuid not null references herald.notifications (id) on delete cascade,
  recipient_id uuid references auth.users (id) on delete set null,
  channel text not null check (channel in ('push', 'email', 'webhook')),
  device_token_id uuid references herald.device_tokens (id) on delete set null,
  -- The address at enqueue time: FCM token, e-mail address or webhook endpoint.
  target text not null,
  platform text check (platform in ('ios', 'android', 'web')),
  status text not null default 'pending'
    check (status in ('pending', 'sent', 'failed', 'expired', 'cancelled', 'dead')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  provider_message_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  sent_at timestamptz
);

comment on table herald.deliveries is
  'The outbox. Recipients and senders read their deliveries; only the dispatcher (service role) writes.';

create index deliveries_due_idx on herald.deliveries (next_attempt_at) where status = 'pending';
create index deliveries_notification_id_idx on herald.deliveries (notification_id);
create index deliveries_recipient_id_idx on herald.deliveries (recipient_id);

-- Every attempt, successful or not, for diagnosis and measurement.
create table herald.delivery_attempts (
  id bigint generated always as identity primary key,
  delivery_id uuid not null references herald.deliveries (id) on delete cascade,
  attempt integer not null,
  at timestamptz not null default now(),
  outcome text not null check (outcome in ('sent', 'retry', 'failed', 'expired', 'dead')),
  status_code integer,
  error_code text,
  error text,
  latency_ms integer
);

comment on table herald.delivery_attempts is
  'Attempt log. Readable by whoever may read the delivery; written by the dispatcher only.';

create index delivery_attempts_delivery_id_idx on herald.delivery_attempts (delivery_id);

-- Visibility helpers. Security definer so the notifications and deliveries
-- policies can look at each other without recursing through RLS.
create function herald.is_sender(p_notification_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from herald.notifications n
    where n.id = p_notification_id and n.sender_id = (select auth.uid())
  )
$$;

create function herald.is_recipient(p_notification_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from herald.deliveries d
    where d.notification_id = p_notification_id and d.recipient_id = (select auth.uid())
  )
$$;

revoke execute on function herald.is_sender(uuid), herald.is_recipient(uuid) from public;
grant execute on function herald.is_sender(uuid), herald.is_recipient(uuid) to authenticated;

alter table herald.notifications enable row level security;
alter table herald.deliveries enable row level security;
alter table herald.delivery_attempts enable row level security;

grant select on herald.notifications, herald.deliveries, herald.delivery_attempts to authenticated;
grant all on herald.notifications, herald.deliveries, herald.delivery_attempts to service_role;

-- Users read what they sent or received; nobody but the service role writes.
create policy "notifications: sender or recipient can select" on herald.notifications
  for select to authenticated
  using (sender_id = (select auth.uid()) or herald.is_recipient(id));

create policy "deliveries: recipient or sender can select" on herald.deliveries
  for select to authenticated
  using (recipient_id = (select auth.uid()) or herald.is_sender(notification_id));

-- An attempt is visible exactly when its delivery is (the subquery runs under deliveries' RLS).
create policy "delivery_attempts: whoever sees the delivery can select" on herald.delivery_attempts
  for select to authenticated
  using (exists (select 1 from herald.deliveries d where d.id = delivery_id));
