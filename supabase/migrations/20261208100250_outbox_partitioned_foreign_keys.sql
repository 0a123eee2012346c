-- Issue 27: the outbox's foreign keys to users, device tokens and webhook
-- endpoints, declared on the partitioned tables (each partition gets its
-- copy; the legacy partitions' own keys are attached, not checked again).
-- Declared once, on the parent, the referenced tables carry one set of
-- triggers however many days there are, and dropping a day never touches
-- them. Attaching the legacy keys replaces their triggers on auth.users,
-- device_tokens and webhook_endpoints, which takes an exclusive lock on each:
-- taken all at once (as the previous file does), held for this file's
-- instant.
set lock_timeout = '5s';

do $$
declare
  tries integer := 0;
begin
  perform set_config('lock_timeout', '100ms', true);
  loop
    begin
      lock table herald.notifications, herald.deliveries, auth.users, herald.device_tokens,
        herald.webhook_endpoints in access exclusive mode;
      exit;
    exception when lock_not_available then
      tries := tries + 1;
      if tries >= 600 then
        raise;
      end if;
      perform pg_sleep(0.02 + random() * 0.08);
    end;
  end loop;
  perform set_config('lock_timeout', '5s', true);
end;
$$;

alter table herald.notifications add constraint notifications_sender_id_fkey
  foreign key (sender_id) references auth.users (id) on delete set null;
alter table herald.deliveries add constraint deliveries_recipient_id_fkey
  foreign key (recipient_id) references auth.users (id) on delete set null;
alter table herald.deliveries add constraint deliveries_device_token_id_fkey
  foreign key (device_token_id) references herald.device_tokens (id) on delete set null;
alter table herald.deliveries add constraint deliveries_webhook_endpoint_id_fkey
  foreign key (webhook_endpoint_id) references herald.webhook_endpoints (id) on delete set null;
