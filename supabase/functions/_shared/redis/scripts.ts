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
 * Calls and failures are counted in ten buckets across the window. The
 * breaker opens when the window holds at least `threshold` failures and,
 * once it has seen `minimumCalls` calls, only if failures are at least
 * `failureRate` of them: five failures in a minute still open a quiet
 * target, while 2 % failures at thousands of sends a second do not. The
 * same rate over the last few seconds alone (five buckets of the recent
 * window) opens it too, so a busy minute's successes cannot hide a total
 * outage that has just begun. A provider-wide `Retry-After` opens it at
 * once for that long.
 *
 * KEYS[1] the breaker's state hash
 * KEYS[2] the window: a hash of per-bucket counters (`c:<bucket>`, `f:<bucket>`)
 * KEYS[3] the recent window, the same way
 * ARGV[1] now, epoch ms
 * ARGV[2] failures in this round (provider faults: 5xx, timeouts, quota…)
 * ARGV[3] successes in this round
 * ARGV[4] "1" when the round was the caller's half-open probe
 * ARGV[5] failures within the window that open the breaker (at least)
 * ARGV[6] the window, ms
 * ARGV[7] the cool-down, ms
 * ARGV[8] calls within the window from which the failure rate decides
 * ARGV[9] the failure rate that opens the breaker, 0..1
 * ARGV[10] a cool-down the provider asked for (Retry-After), ms; 0 if none
 * ARGV[11] the recent window, ms
 * ARGV[12] the longest wait this round's failures asked for, ms (0 if none):
 *          the cool-down when this round opens the breaker, if longer
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
local minimum_calls = tonumber(ARGV[8])
local failure_rate = tonumber(ARGV[9])
local asked = tonumber(ARGV[10])
local recent = tonumber(ARGV[11])
local waited = math.max(cooldown, tonumber(ARGV[12]))
local function open(ms)
  redis.call('HSET', KEYS[1], 'open_until', now + ms)
  redis.call('HDEL', KEYS[1], 'probe_until')
  redis.call('PEXPIRE', KEYS[1], ms + 86400000)
  redis.call('DEL', KEYS[2], KEYS[3])
  return {'opened', now + ms}
end
if ARGV[4] == '1' then
  if failures > 0 then return open(math.max(cooldown, asked)) end
  if successes > 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return {'closed', 0}
  end
  redis.call('HDEL', KEYS[1], 'probe_until')
  return {'open', now}
end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if open_until then return {'open', open_until} end
if asked > 0 then return open(asked) end
local calls = failures + successes
if calls == 0 then return {'closed', 0} end
-- Adds the round to a window of five or ten buckets and sums what is still in it.
local function count(key, span_ms, buckets)
  local span = math.max(1, math.floor(span_ms / buckets))
  local bucket = math.floor(now / span)
  redis.call('HINCRBY', key, 'c:' .. bucket, calls)
  if failures > 0 then redis.call('HINCRBY', key, 'f:' .. bucket, failures) end
  redis.call('PEXPIRE', key, span_ms + span)
  if failures == 0 then return 0, 0 end
  local oldest = bucket - buckets + 1
  local total_calls, total_failures = 0, 0
  local counters = redis.call('HGETALL', key)
  for i = 1, #counters, 2 do
    local kind, at = string.match(counters[i], '^(%a):(%-?%d+)$')
    if tonumber(at) < oldest then
      redis.call('HDEL', key, counters[i])
    elseif kind == 'c' then
      total_calls = total_calls + tonumber(counters[i + 1])
    else
      total_failures = total_failures + tonumber(counters[i + 1])
    end
  end
  return total_calls, total_failures
end
local total_calls, total_failures = count(KEYS[2], window, 10)
local recent_calls, recent_failures = count(KEYS[3], recent, 5)
if failures == 0 then return {'closed', 0} end
if total_failures >= threshold
   and (total_calls < minimum_calls or total_failures >= failure_rate * total_calls) then
  return open(waited)
end
if recent_failures >= threshold and recent_failures >= failure_rate * recent_calls then
  return open(waited)
end
return {'closed', 0}`,
  sha1: "22e4b8882fd5b6ea3c0cc7499e72cd47c1bcecb9",
};

/**
 * Send slots: at most `limit` sends in flight to one target across every
 * dispatcher, each holder's fair share kept free for it. A hash holds each
 * holder's count and expiry (`<count>:<expires at>`), so a crashed holder's
 * slots free themselves and a call costs one entry per holder, not one per
 * slot. A holder that wants slots is entered even when none are free (count
 * 0): it is waiting, and every other holder's grant leaves it a share
 * (`limit` over the holders, rounded down) from their next call on. Without
 * that, the first to ask kept every slot for as long as it renewed them and
 * the others released what they had claimed. `wanted` 0 gives them all back.
 *
 * KEYS[1] the target's slots: a hash of holder id → `<count>:<expires at, epoch ms>`
 * ARGV[1] now, epoch ms
 * ARGV[2] the target's limit
 * ARGV[3] slots this holder wants in all
 * ARGV[4] how long slots are held without being renewed, ms
 * ARGV[5] the holder's unique id
 *
 * Returns how many slots the holder now has.
 */
export const SEND_SLOTS: LuaScript = {
  name: "send_slots",
  source: `local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local holder = ARGV[5]
local others = 0
local holders = 0
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  if held[i] ~= holder then
    local count, expires = string.match(held[i + 1], '^(%d+):(%d+)$')
    if tonumber(expires) <= now then
      redis.call('HDEL', KEYS[1], held[i])
    else
      others = others + tonumber(count)
      holders = holders + 1
    end
  end
end
if wanted <= 0 then
  redis.call('HDEL', KEYS[1], holder)
  return 0
end
local share = math.floor(limit / (holders + 1))
local granted = math.max(0, math.min(wanted, limit - others, limit - share * holders))
redis.call('HSET', KEYS[1], holder, granted .. ':' .. (now + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
return granted`,
  sha1: "76b9da0e8f3375a6f3b5526210e16500043f1642",
};

/** Every script, for the hash test. */
export const SCRIPTS: readonly LuaScript[] = [BREAKER_ADMIT, BREAKER_RECORD, SEND_SLOTS];

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
