-- Herald keeps its tables in its own schema so it can live in any Supabase
-- project beside the app's own tables in public. Nothing here is exposed
-- through PostgREST; the functions connect to Postgres directly.
create schema if not exists herald;

comment on schema herald is 'Herald notification delivery: devices, notifications, the delivery outbox.';

-- API roles may reach objects in the schema; grants per table and RLS decide the rest.
-- anon gets nothing: every Herald call is made by a signed-in user or a service.
grant usage on schema herald to authenticated, service_role;
