-- A device that can receive pushes: an FCM registration token owned by one user.
create table herald.device_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  token text not null unique check (length(token) between 1 and 4096),
  platform text not null check (platform in ('ios', 'android', 'web')),
  created_at timestamptz not null default now(),
  -- Refreshed whenever the app re-registers; tokens unseen for 270 days are stale (FCM guidance).
  last_seen_at timestamptz not null default now(),
  -- Set when FCM reports the token dead (UNREGISTERED, SENDER_ID_MISMATCH); such tokens get no pushes.
  disabled_at timestamptz,
  disabled_reason text
);

comment on table herald.device_tokens is
  'FCM registration tokens. Users read, refresh and delete their own; registration goes through herald.register_device.';

create index device_tokens_user_id_idx on herald.device_tokens (user_id);

alter table herald.device_tokens enable row level security;

grant select, insert, update, delete on herald.device_tokens to authenticated;
grant all on herald.device_tokens to service_role;

-- Users see, add, change and remove only their own tokens; service_role bypasses RLS.
create policy "device_tokens: owner can select" on herald.device_tokens
  for select to authenticated using (user_id = (select auth.uid()));
create policy "device_tokens: owner can insert" on herald.device_tokens
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "device_tokens: owner can update" on herald.device_tokens
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy "device_tokens: owner can delete" on herald.device_tokens
  for delete to authenticated using (user_id = (select auth.uid()));

-- Registers or refreshes the caller's token. A token already registered by
-- another user moves to the caller (the last owner wins: the device changed
-- hands), which RLS alone cannot express because the caller may not see the
-- other user's row.
create function herald.register_device(p_token text, p_platform text)
returns herald.device_tokens
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  registered herald.device_tokens;
begin
  if caller is null then
    raise exception 'register_device needs a signed-in user' using errcode = '42501';
  end if;
  insert into herald.device_tokens as t (user_id, token, platform)
  values (caller, p_token, p_platform)
  on conflict (token) do update
    set user_id = excluded.user_id,
        platform = excluded.platform,
        last_seen_at = now(),
        disabled_at = null,
        disabled_reason = null
  returning t.* into registered;
  return registered;
end;
$$;

revoke execute on function herald.register_device(text, text) from public;
grant execute on function herald.register_device(text, text) to authenticated;
