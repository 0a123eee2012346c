/**
 * `npm run user -- <email>`: creates (or finds) a user in the running local
 * stack and prints their id and a one-day access token, as GoTrue would issue.
 *
 * @module
 */
import { SignJWT } from "jose";
import postgres from "postgres";
import { loadStackConfig } from "./stack/config.ts";

const email = Deno.args[0] ?? "alice@example.com";
const stack = await loadStackConfig();
const sql = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
try {
  const [user] = await sql`
    with existing as (select id from auth.users where email = ${email}),
    created as (
      insert into auth.users (id, aud, role, email, email_confirmed_at)
      select gen_random_uuid(), 'authenticated', 'authenticated', ${email}, now()
      where not exists (select 1 from existing)
      returning id
    )
    select id from existing union all select id from created`;
  const token = await new SignJWT({ role: "authenticated", email, aud: "authenticated" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(user.id)
    .setIssuer(`${stack.apiUrl}/auth/v1`)
    .setIssuedAt()
    .setExpirationTime("24h")
    .sign(new TextEncoder().encode(stack.jwtSecret));
  console.log(`USER_ID=${user.id}`);
  console.log(`TOKEN=${token}`);
  // Kong's key-auth wants an API key on every call, as supabase-js sends it.
  console.log(`ANON_KEY=${stack.anonKey}`);
} finally {
  await sql.end();
}
