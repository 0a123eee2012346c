/**
 * Access-token verification: HS256 with the project secret, ES256/RS256
 * against a JWKS (served here on loopback, as the project's auth server
 * publishes it), `exp` enforced, and signing-key rotation picked up without a
 * restart.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import {
  createJwtVerifier,
  InvalidToken,
  KeysUnavailable,
} from "../supabase/functions/_shared/auth/jwt.ts";

const SECRET = "a-test-secret-of-at-least-thirty-two-characters";

async function signingKey(alg: "ES256" | "RS256", kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

/** A JWKS endpoint whose published keys the test changes; counts fetches. */
function serveJwks(keys: JWK[]) {
  const state = { keys, fetches: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    state.fetches++;
    return Response.json({ keys: state.keys });
  });
  return {
    state,
    url: `http://127.0.0.1:${server.addr.port}/jwks.json`,
    close: () => server.shutdown(),
  };
}

const claims = { role: "authenticated", sub: crypto.randomUUID() };

function token(
  key: { alg: string; kid?: string; privateKey: Parameters<SignJWT["sign"]>[0] },
  exp: string | number = "5m",
  body: Record<string, unknown> = claims,
) {
  return new SignJWT(body).setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuedAt().setExpirationTime(exp).sign(key.privateKey);
}

const hs256 = { alg: "HS256", privateKey: new TextEncoder().encode(SECRET) };

async function refused(verify: (t: string) => Promise<unknown>, jwt: string, reason: RegExp) {
  await assert.rejects(verify(jwt), (error: unknown) => {
    assert.ok(error instanceof InvalidToken, String(error));
    assert.match(error.message, reason);
    return true;
  });
}

Deno.test("jwt: HS256 with the project secret verifies; another secret, expiry or no exp is refused", async () => {
  const jwks = serveJwks([]);
  try {
    const verify = createJwtVerifier({ secret: SECRET, jwksUrl: jwks.url });
    assert.equal((await verify(await token(hs256))).sub, claims.sub);
    const forged = { alg: "HS256", privateKey: new TextEncoder().encode(SECRET + "x") };
    await refused(verify, await token(forged), /signature/);
    await refused(verify, await token(hs256, Math.floor(Date.now() / 1000) - 60), /expired/);
    const noExp = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" })
      .sign(hs256.privateKey);
    await refused(verify, noExp, /exp/);
    await refused(verify, "not.a.jwt", /not a JWT|JWS|JWT/);
    const withoutSecret = createJwtVerifier({ jwksUrl: jwks.url });
    await refused(withoutSecret, await token(hs256), /HS256 tokens are not accepted/);
  } finally {
    await jwks.close();
  }
});

Deno.test("jwt: ES256 and RS256 verify against the JWKS, and a rotated-in key is fetched without a restart", async () => {
  const first = await signingKey("ES256", "key-1");
  const rsa = await signingKey("RS256", "key-rsa");
  const jwks = serveJwks([first.jwk, rsa.jwk]);
  try {
    const verify = createJwtVerifier({ jwksUrl: jwks.url, jwksCooldownMs: 0 });
    assert.equal((await verify(await token(first))).sub, claims.sub);
    assert.equal((await verify(await token(rsa))).sub, claims.sub);
    assert.equal(jwks.state.fetches, 1, "the set is cached");

    // The project rotates: a new key is published and starts signing.
    const second = await signingKey("ES256", "key-2");
    jwks.state.keys = [first.jwk, second.jwk];
    assert.equal((await verify(await token(second))).sub, claims.sub);
    assert.equal(jwks.state.fetches, 2, "an unknown kid fetched the set again");

    // The old key is withdrawn: once the set is fetched again, its tokens fail.
    jwks.state.keys = [second.jwk];
    const unknown = await signingKey("ES256", "key-unpublished");
    await refused(verify, await token(unknown), /no published key/);
    await refused(verify, await token(second, Math.floor(Date.now() / 1000) - 60), /expired/);
  } finally {
    await jwks.close();
  }
});

/** A JWKS endpoint that fails as told: a 500, a hang, or a closed port. */
function failingJwks(mode: "500" | "hang") {
  const state = { fetches: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    state.fetches++;
    if (mode === "hang") await new Promise((resolve) => setTimeout(resolve, 8_000));
    return new Response("upstream trouble", { status: 500 });
  });
  return {
    state,
    url: `http://127.0.0.1:${server.addr.port}/jwks.json`,
    close: () => server.shutdown(),
  };
}

for (const mode of ["500", "hang", "unreachable"] as const) {
  Deno.test({
    name: `jwt: a JWKS that ${
      mode === "unreachable" ? "cannot be reached" : `answers ${mode}`
    } makes ES256 tokens 'keys unavailable', remembered for the cool-down`,
    // jose leaves a failed JWKS response's body unread; older Deno's sanitizer counts it.
    sanitizeResources: false,
    fn: async () => {
      const server = mode === "unreachable" ? undefined : failingJwks(mode);
      const listener = mode === "unreachable"
        ? Deno.listen({ hostname: "127.0.0.1", port: 0 })
        : undefined;
      const url = server?.url ??
        `http://127.0.0.1:${(listener!.addr as Deno.NetAddr).port}/jwks.json`;
      listener?.close();
      let clock = Date.now();
      try {
        const verify = createJwtVerifier({
          jwksUrl: url,
          secret: SECRET,
          jwksFailureCooldownMs: 10_000,
          now: () => clock,
        });
        const key = await signingKey("ES256", "key-1");
        const jwt = await token(key);
        for (let i = 0; i < 3; i++) {
          await assert.rejects(verify(jwt), (error: unknown) => {
            assert.ok(error instanceof KeysUnavailable, String(error));
            assert.ok(error.retryAfterS >= 1 && error.retryAfterS <= 10, String(error.retryAfterS));
            return true;
          });
        }
        if (server) {
          assert.equal(server.state.fetches, 1, "the failure is remembered, not refetched");
        }
        assert.equal((await verify(await token(hs256))).sub, claims.sub, "HS256 needs no JWKS");
        clock += 10_001;
        await assert.rejects(verify(jwt), KeysUnavailable);
        if (server) {
          assert.equal(server.state.fetches, 2, "after the cool-down it is fetched again");
        }
      } finally {
        await server?.close();
      }
    },
  });
}

Deno.test({
  name: "caller: keys unavailable is a 503 with Retry-After, never a 500",
  sanitizeResources: false, // as above: jose's unread body of the failed fetch
}, async () => {
  const { createCallerResolver } = await import("../supabase/functions/_shared/auth/caller.ts");
  const { Problem } = await import("../supabase/functions/_shared/http/problem.ts");
  const server = failingJwks("500");
  try {
    const resolve = createCallerResolver({
      verify: createJwtVerifier({ jwksUrl: server.url }),
      serviceKeys: ["sb_secret_test"],
    });
    const jwt = await token(await signingKey("ES256", "key-1"));
    await assert.rejects(
      resolve(new Headers({ authorization: `Bearer ${jwt}` })),
      (error: unknown) => {
        assert.ok(error instanceof Problem, String(error));
        assert.equal(error.status, 503);
        assert.equal(error.type, "keys-unavailable");
        assert.match(error.headers["retry-after"], /^\d+$/);
        return true;
      },
    );
  } finally {
    await server.close();
  }
});
