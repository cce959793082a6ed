-- put_job(keys=[job, jobs, due], args=[jid, name, next_ms, cadence, (field, value)...])
--
-- Creates or replaces one job: its fields, a new generation (and the cadence stamped with
-- it, see claim_due.lua), its collection's index entry and its place in the due set.
--
-- Keys:
--   job   hash  the job: the fields given, gen (incremented), cadence; finishedAt is
--               removed
--   jobs  zset  the collection's job names (score 0, lex order)
--   due   zset  member: a job id; score: when due, epoch ms
--
-- Arguments:
--   jid      string  the job
--   name     string  its name in the collection
--   next_ms  string  its first occurrence, epoch ms; '' when it is not scheduled
--   cadence  string  "first µs|step µs|last µs or empty|action type"
--                    (domain.cadence.Cadence); '' for none. Stored as "gen|" .. cadence.
--   then field/value pairs of the job hash (def, startTime, state, owner, displayName,
--   queue, nextExecutionTime: scheduler.store.jobs)
--
-- Returns: int, 1 when the job existed before, else 0.
local job_key, jobs_key, due_key = KEYS[1], KEYS[2], KEYS[3]
local jid, name, next_ms, cadence = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local FIRST_FIELD = 5

local existed = redis.call('EXISTS', job_key)
redis.call('HSET', job_key, unpack(ARGV, FIRST_FIELD))
local gen = redis.call('HINCRBY', job_key, 'gen', 1)
redis.call('HDEL', job_key, 'finishedAt', 'cadence')
if cadence ~= '' then redis.call('HSET', job_key, 'cadence', gen .. '|' .. cadence) end
redis.call('ZADD', jobs_key, 0, name)
if next_ms ~= '' then
  redis.call('ZADD', due_key, next_ms, jid)
else
  redis.call('ZREM', due_key, jid)
end
return existed
