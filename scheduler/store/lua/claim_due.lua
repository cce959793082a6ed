-- claim_due(keys=[due, claims, ledger],
--           args=[batch, group, consumer, job_prefix, redelivery_ms, claims_per_entry])
--
-- Claims up to `batch` due occurrences, by Redis's clock, exactly once across beats, and
-- returns what the beat needs to publish them (so it reads nothing else).
--
-- They move from the due set into the claims stream and straight into this beat's
-- pending list (XREADGROUP in the same script), so a beat killed before it published
-- them leaves them pending for another beat's XAUTOCLAIM. A stream entry holds up to
-- `claims_per_entry` claims: one XADD per that many, not one per occurrence. Each one's
-- first attempt is entered in the execution ledger, to be delivered again at
-- now + `redelivery_ms` unless a worker records it first (the beat removes the ones it
-- decides not to run).
--
-- A job carries a `cadence` field when the beat would run every due occurrence of it: a
-- one-shot job or a plain interval under the default missed-run policy, without a
-- starting deadline (scheduler.domain.planning.cadence). While its gen is current and it
-- is Enabled, this script puts it back at its next occurrence itself (the first one
-- strictly after max(due, now), the RunOnce policy; none for a one-shot job) and returns
-- no definition: the beat only publishes it. Every other claim comes back with the
-- job's fields for the beat to plan and ADVANCE.
--
-- Keys:
--   due     zset    member: a job id, or a retry member "jid|m|occ ms|attempt" ("e" for
--                   the error action; codecs.RetryMember); score: when due, epoch ms
--   claims  stream  one entry per `claims_per_entry` claims; field: the due-set member,
--                   value: "due ms|gen", plus "|action type" when this script advanced
--                   the job (codecs.ClaimValue)
--   ledger  zset    member: an attempt, "jid|m|occ ms|attempt|s" ("e" for the error
--                   action; codecs.LedgerEntry); score: when to deliver it again, epoch ms
--   and the hashes `job_prefix` .. jid: reads gen, state, queue, cadence ("gen|first
--   µs|step µs|last µs or empty|action type", domain.cadence.Cadence behind the gen), def
--   and startTime; writes lastOccurrence and nextExecutionTime of the jobs it advances.
--
-- Arguments:
--   batch             int     most occurrences to claim
--   group             string  the beats' consumer group on the claims stream
--   consumer          string  this beat's name in the group
--   job_prefix        string  the common start of every job hash key (KeySchema.job_prefix)
--   redelivery_ms     int     how long the ledger waits before an attempt is owed again
--   claims_per_entry  int     claims per claims-stream entry (scheduler.store.claims); at
--                             most a few thousand: Lua's unpack has a stack limit
--
-- Returns: {now ms, stream ids, advanced, planned}; advanced and planned are flat:
--   four per claim this script advanced (jid, due ms, action type, queue), seven per
--   claim left to the beat (member, due ms, gen, and the job's def, state, queue and
--   startTime, as scheduler.store.claims._JOB_FIELDS; '' for each one missing: the job is
--   gone, or it has no start, or it was stored before the startTime field).
local due_key, claims_key, ledger_key = KEYS[1], KEYS[2], KEYS[3]
local batch = tonumber(ARGV[1])
local group, consumer = ARGV[2], ARGV[3]
local job_prefix = ARGV[4]
local redelivery_ms = tonumber(ARGV[5])
local claims_per_entry = tonumber(ARGV[6])

-- ZADD of the jobs put back, this many arguments per call (Lua's unpack has a stack limit).
local ZADD_CHUNK = 1000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', due_key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
if #due == 0 then return {now, {}, {}, {}} end
-- ZRANGEBYSCORE from -inf returns the lowest ranks, so this removes exactly those.
redis.call('ZREMRANGEBYRANK', due_key, 0, #due / 2 - 1)
local again = now + redelivery_ms
-- Tables are filled through counters: Lua 5.1's # is a binary search on every use.
local fast, slow, entry, owed, put = {}, {}, {}, {}, {}
local nf, ns, ne, no, np, entries = 0, 0, 0, 0, 0, 0
local function flush()
  redis.call('XADD', claims_key, '*', unpack(entry, 1, ne))
  redis.call('ZADD', ledger_key, unpack(owed, 1, no))
  entries, ne, no = entries + 1, 0, 0
end
for i = 1, #due, 2 do
  local member, score = due[i], due[i + 1]
  local jid, owe = member, nil
  local bar = string.find(member, '|', 1, true)
  if bar then  -- a retry member: its attempt is the member plus its origin
    jid, owe = string.sub(member, 1, bar - 1), member .. '|s'
  else  -- a job: the first attempt of its main action
    owe = member .. '|m|' .. score .. '|0|s'
  end
  local key = job_prefix .. jid
  local h = redis.call('HMGET', key, 'gen', 'state', 'queue', 'cadence')
  local gen, state, queue, action = h[1] or '0', h[2] or '', h[3] or '', nil
  if not bar and state == 'Enabled' and h[4] then
    local cadence_gen, first, step, last, kind =
      string.match(h[4], '^(%d+)|(%d+)|(%d+)|(%d*)|(.+)$')
    if cadence_gen == gen then
      local nxt = next_ms(math.max(tonumber(score), now) * 1000, tonumber(first),
                          tonumber(step), last)
      redis.call('HSET', key, 'lastOccurrence', score, 'nextExecutionTime', nxt)
      if nxt ~= '' then
        put[np + 1], put[np + 2], np = nxt, jid, np + 2
        if np == ZADD_CHUNK then
          redis.call('ZADD', due_key, unpack(put, 1, np))
          np = 0
        end
      end
      action = kind
    end
  end
  if action then
    fast[nf + 1], fast[nf + 2], fast[nf + 3], fast[nf + 4] = jid, score, action, queue
    nf = nf + 4
    entry[ne + 1], entry[ne + 2] = member, score .. '|' .. gen .. '|' .. action
  else
    local job = redis.call('HMGET', key, 'def', 'startTime')
    slow[ns + 1], slow[ns + 2], slow[ns + 3] = member, score, gen
    slow[ns + 4], slow[ns + 5], slow[ns + 6] = job[1] or '', state, queue
    slow[ns + 7] = job[2] or ''
    ns = ns + 7
    entry[ne + 1], entry[ne + 2] = member, score .. '|' .. gen
  end
  owed[no + 1], owed[no + 2] = again, owe
  ne, no = ne + 2, no + 2
  if ne == 2 * claims_per_entry then flush() end  -- two per claim: field and value
end
if ne > 0 then flush() end
if np > 0 then redis.call('ZADD', due_key, unpack(put, 1, np)) end
local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', entries,
                        'STREAMS', claims_key, '>')
local ids = {}
for i, e in ipairs(read[1][2]) do ids[i] = e[1] end
return {now, ids, fast, slow}
