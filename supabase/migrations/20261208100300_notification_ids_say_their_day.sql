-- Notification ids are UUIDv7 from now on: the first 48 bits are the
-- creation time in milliseconds (RFC 9562), so a notification that is no
-- longer there can be told apart from one that never was: its id says when
-- it was created, and if that is older than the outbox keeps, the answer is
-- "past retention" rather than "not found". Postgres 15 has no uuidv7().
-- The time is the transaction's (now()), as created_at's is.
create function herald.uuid_v7(p_at timestamptz default now()) returns uuid
language sql volatile parallel safe set search_path = ''
as $$
  select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    placing substring(int8send(floor(extract(epoch from p_at) * 1000)::bigint) from 3)
    from 1 for 6), 52, 1), 53, 1), 'hex')::uuid
$$;
comment on function herald.uuid_v7(timestamptz) is
  'A UUIDv7 (RFC 9562) whose time is p_at, to the millisecond.';

-- When a v7 id was made; null for any other version (ids made before v7).
create function herald.uuid_v7_time(p_id uuid) returns timestamptz
language sql immutable parallel safe set search_path = ''
as $$
  select case when substr(p_id::text, 15, 1) = '7' then
    to_timestamp((('x' || substr(replace(p_id::text, '-', ''), 1, 12))::bit(48)::bigint) / 1000.0)
  end
$$;

alter table herald.notifications alter column id set default herald.uuid_v7();

-- When the notification with this id was created, if that is before what
-- the outbox keeps now (herald.retention 'notifications'); null otherwise
-- (kept, not yet dropped, or an id that does not say).
create function herald.past_retention(p_id uuid) returns timestamptz
language sql stable security definer set search_path = ''
as $$
  select t from (select herald.uuid_v7_time(p_id) as t) x
  where t < now() - herald.retention_of('notifications')
$$;
revoke all on function herald.past_retention(uuid) from public, anon;
grant execute on function herald.past_retention(uuid) to authenticated, service_role;
