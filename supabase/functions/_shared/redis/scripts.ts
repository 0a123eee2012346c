/**
 * Herald's Lua scripts, their pinned SHA1s, and the EVALSHA-then-EVAL call.
 * Every key a script touches is in KEYS; time comes in ARGV (scripts stay
 * deterministic and replicate as written).
 *
 * @module
 */
import type { Redis } from "@upstash/redis";

/** A Lua script and the SHA1 of its text (checked against Redis by a test). */
export interface LuaScript {
  name: string;
  source: string;
  sha1: string;
}

/**
 * Circuit-breaker admission: may the caller send to this target now?
 *
 * KEYS[1] the breaker's state hash (`open_until`, `probe_until`, epoch ms)
 * ARGV[1] now, epoch ms
 * ARGV[2] how long a won probe is held before another caller may probe, ms
 * ARGV[3] how soon callers that lost the probe look again, ms
 *
 * Returns `{"closed", 0}`, `{"probe", 0}` (this caller won the half-open
 * probe) or `{"open", retryAt}`.
 */
export const BREAKER_ADMIT: LuaScript = {
  name: "breaker_admit",
  source: `local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until = tonumber(state[1])
if not open_until then return {'closed', 0} end
if now < open_until then return {'open', open_until} end
local probe_until = tonumber(state[2])
if probe_until and now < probe_until then
  return {'open', math.min(probe_until, now + tonumber(ARGV[3]))}
end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
return {'probe', 0}`,
  sha1: "8e69853e30f71b7142050e7747d2a23c22146dde",
};

/**
 * Circuit-breaker bookkeeping after a round of sends to one target.
 *
 * KEYS[1] the breaker's state hash
 * KEYS[2] the failure window: a sorted set of failures scored by time
 * ARGV[1] now, epoch ms
 * ARGV[2] failures in this round (provider faults: 5xx, timeouts, quota…)
 * ARGV[3] successes in this round
 * ARGV[4] "1" when the round was the caller's half-open probe
 * ARGV[5] failures within the window that open the breaker
 * ARGV[6] the window, ms
 * ARGV[7] the cool-down, ms
 * ARGV[8] a caller-unique prefix for failure members
 *
 * Returns `{"closed", 0}`, `{"open", openUntil}` or `{"opened", openUntil}`
 * (this round opened it).
 */
export const BREAKER_RECORD: LuaScript = {
  name: "breaker_record",
  source: `local now = tonumber(ARGV[1])
local failures = tonumber(ARGV[2])
local successes = tonumber(ARGV[3])
local threshold = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local cooldown = tonumber(ARGV[7])
local function open()
  redis.call('HSET', KEYS[1], 'open_until', now + cooldown)
  redis.call('HDEL', KEYS[1], 'probe_until')
  redis.call('PEXPIRE', KEYS[1], cooldown + 86400000)
  redis.call('DEL', KEYS[2])
  return {'opened', now + cooldown}
end
if ARGV[4] == '1' then
  if failures > 0 then return open() end
  if successes > 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    return {'closed', 0}
  end
  redis.call('HDEL', KEYS[1], 'probe_until')
  return {'open', now}
end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if open_until then return {'open', open_until} end
if failures == 0 then return {'closed', 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
for i = 1, math.min(failures, threshold) do
  redis.call('ZADD', KEYS[2], now, ARGV[8] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[2], window)
if redis.call('ZCARD', KEYS[2]) >= threshold then return open() end
return {'closed', 0}`,
  sha1: "e9818946c1c24cde17beeed007d9a3494645cf11",
};

/** Every script, for the hash test. */
export const SCRIPTS: readonly LuaScript[] = [BREAKER_ADMIT, BREAKER_RECORD];

/** The Redis commands {@linkcode runScript} needs. */
export type ScriptRedis = Pick<Redis, "evalsha" | "eval">;

/**
 * Runs `script` by its SHA1, loading it with EVAL once if Redis has not seen
 * it (`NOSCRIPT`, e.g. after a restart or on a fresh database).
 */
export async function runScript<T>(
  redis: ScriptRedis,
  script: LuaScript,
  keys: string[],
  args: (string | number)[],
): Promise<T> {
  const argv = args.map(String);
  try {
    return await redis.evalsha<string[], T>(script.sha1, keys, argv);
  } catch (error) {
    if (!String((error as Error).message).includes("NOSCRIPT")) throw error;
    return await redis.eval<string[], T>(script.source, keys, argv);
  }
}
