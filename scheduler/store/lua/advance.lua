-- advance(keys=[due], args=[job_prefix, (jid, gen, next_ms, occurrence_ms, cadence)...])
--
-- Puts a batch of dispatched jobs back into the due set at their next occurrence, each
-- unless it was deleted, replaced (its writer already scheduled it) or stopped being
-- Enabled; one call per batch (the due set gets one ZADD per 500 jobs). A job whose rule
-- the claim script can follow gets its cadence (see claim_due.lua), stamped with the gen
-- it was planned from.
--
-- Keys:
--   due  zset  member: a job id; score: when due, epoch ms
--   and the hashes `job_prefix` .. jid: reads gen and state; writes lastOccurrence,
--   nextExecutionTime and cadence ("gen|first µs|step µs|last µs or empty|action type":
--   this script joins the gen in front of the beat's domain.cadence.Cadence).
--
-- Arguments:
--   job_prefix  string  the common start of every job hash key (KeySchema.job_prefix)
--   then five per job:
--     jid            string  the job
--     gen            string  the job's gen when it was claimed (planned from)
--     next_ms        string  its next occurrence, epoch ms; '' when it has none
--     occurrence_ms  string  the occurrence just dispatched, epoch ms
--     cadence        string  "first µs|step µs|last µs or empty|action type"
--                            (domain.cadence.Cadence); '' when the beat keeps planning
--                            the job
--
-- Returns: int, how many jobs were put back.
local due_key = KEYS[1]
local job_prefix = ARGV[1]
local PER_JOB = 5
-- ZADD arguments per call (Lua's unpack has a stack limit).
local ZADD_CHUNK = 1000

local put, back = {}, 0
for i = 2, #ARGV, PER_JOB do
  local jid, gen, next_ms = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local occurrence_ms, cadence = ARGV[i + 3], ARGV[i + 4]
  local key = job_prefix .. jid
  local h = redis.call('HMGET', key, 'gen', 'state')
  if h[1] and h[1] == gen then
    redis.call('HSET', key, 'lastOccurrence', occurrence_ms, 'nextExecutionTime', next_ms)
    if cadence ~= '' then
      redis.call('HSET', key, 'cadence', gen .. '|' .. cadence)
    end
    if h[2] == 'Enabled' and next_ms ~= '' then
      put[#put + 1] = next_ms
      put[#put + 1] = jid
      back = back + 1
      if #put == ZADD_CHUNK then
        redis.call('ZADD', due_key, unpack(put))
        put = {}
      end
    end
  end
end
if #put > 0 then redis.call('ZADD', due_key, unpack(put)) end
return back
