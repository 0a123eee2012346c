-- Every Herald table has RLS on, whatever migration added it; the dispatchers'
-- heartbeats belong to the service role alone.
begin;
select plan(5);

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'herald' and c.relkind in ('r', 'p') and not c.relrowsecurity
$$, 'every herald table has RLS enabled');

select ok(not has_table_privilege('anon', 'herald.dispatchers', 'select'),
  'anon cannot read dispatchers');
select ok(not has_table_privilege('authenticated', 'herald.dispatchers', 'select'),
  'authenticated cannot read dispatchers');
select ok(not has_function_privilege('authenticated',
  'herald.dispatcher_heartbeat(uuid, text, boolean, interval)', 'execute'),
  'authenticated cannot beat for a dispatcher or take one over');
select ok(not has_function_privilege('anon',
  'herald.dispatcher_heartbeat(uuid, text, boolean, interval)', 'execute'),
  'anon cannot beat for a dispatcher or take one over');

select * from finish();
rollback;
