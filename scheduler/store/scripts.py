"""The Lua scripts behind every multi-step write the store cannot do with MULTI.

Each script touches only keys of one deployment, which share the hash tag ``{prefix}``;
job hashes are addressed from a key prefix plus a job id, so they are in the same slot.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE_LEASE",
    "ADVANCE",
    "CADENCE_NEXT",
    "CLAIM_DUE",
    "CLAIM_RUNNING",
    "PUT_JOB",
    "RECORD_ATTEMPT",
    "REDELIVER",
    "RELEASE_RUNNING",
]

#: The next occurrence of a cadence (Rule.grid_us: first, step and last in epoch µs, last
#: '' when none; step 0 for a one-shot job) strictly after the µs instant ``after``, in
#: epoch ms ('' = none). Lua's numbers are doubles: epoch µs stay far below 2^53, so the
#: products are exact, and the loops correct the quotient's rounding by a step at most.
CADENCE_NEXT = """
local function next_ms(after, first, step, last)
  if step == 0 then return '' end
  local at = first
  if after >= first then
    local k = math.floor((after - first) / step)
    while first + k * step <= after do k = k + 1 end
    while k > 0 and first + (k - 1) * step > after do k = k - 1 end
    at = first + k * step
  end
  if last ~= '' and at > tonumber(last) then return '' end
  return string.format('%d', math.floor(at / 1000))
end
"""

#: Claim up to ARGV[1] due occurrences, by Redis's clock, exactly once across beats, and
#: return what the beat needs to publish them (so it reads nothing else).
#: They move from the due set into the claims stream and straight into this beat's
#: pending list (XREADGROUP in the same script), so a beat killed before it published
#: them leaves them pending for another beat's XAUTOCLAIM. A stream entry holds up to
#: 500 claims (field = due-set member, value = "due ms|gen", plus "|action type" when
#: this script advanced the job): one XADD per 500, not one per occurrence. Each one's
#: first attempt is entered in the execution ledger, to be delivered again at
#: now + ARGV[5] ms unless a worker records it first (the beat removes the ones it
#: decides not to run).
#: A job carries a ``cadence`` field when the beat would run every due occurrence of it:
#: a one-shot job or a plain interval under the default missed-run policy, without a
#: starting deadline ("gen|first µs|step µs|last µs or empty|action type", see
#: scheduler.domain.planning.cadence). While its gen is current and it is Enabled, this script
#: puts it back at its next occurrence itself (the first one strictly after max(due,
#: now), the RunOnce policy; none for a one-shot job) and returns no definition: the
#: beat only publishes it. Every other claim comes back with the definition for the beat
#: to plan and ADVANCE.
#: ZRANGEBYSCORE from -inf returns the lowest ranks, so ZREMRANGEBYRANK removes exactly
#: those. Lists are sent to XADD and ZADD in chunks: Lua's unpack has a stack limit.
#: KEYS: due, claims, ledger. ARGV: batch, group, consumer, job key prefix, redelivery ms.
#: Returns {now_ms, stream ids, advanced, planned}, both flat: four per claim this script
#: advanced (jid, due ms, action type, queue), six per claim left to the beat (member,
#: due ms, gen, and the job's def, state and queue; '' when the job is gone).
CLAIM_DUE = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0,
                       tonumber(ARGV[1]))
if #due == 0 then return {now, {}, {}, {}} end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due / 2 - 1)
local again = now + tonumber(ARGV[5])
-- Tables are filled through counters: Lua 5.1's # is a binary search on every use.
local fast, slow, entry, owed, put = {}, {}, {}, {}, {}
local nf, ns, ne, no, np, entries = 0, 0, 0, 0, 0, 0
local function flush()
  redis.call('XADD', KEYS[2], '*', unpack(entry, 1, ne))
  redis.call('ZADD', KEYS[3], unpack(owed, 1, no))
  entries, ne, no = entries + 1, 0, 0
end
"""
    + CADENCE_NEXT
    + """
for i = 1, #due, 2 do
  local member, score = due[i], due[i + 1]
  local jid, owe = member, nil
  local bar = string.find(member, '|', 1, true)
  if bar then
    jid, owe = string.sub(member, 1, bar - 1), member .. '|s'
  else
    owe = member .. '|m|' .. score .. '|0|s'
  end
  local key = ARGV[4] .. jid
  local h = redis.call('HMGET', key, 'gen', 'state', 'queue', 'cadence')
  local gen, state, queue, action = h[1] or '0', h[2] or '', h[3] or '', nil
  if not bar and state == 'Enabled' and h[4] then
    local cg, first, step, last, kind =
      string.match(h[4], '^(%d+)|(%d+)|(%d+)|(%d*)|(.+)$')
    if cg == gen then
      local nxt = next_ms(math.max(tonumber(score), now) * 1000, tonumber(first),
                          tonumber(step), last)
      redis.call('HSET', key, 'lastOccurrence', score, 'nextExecutionTime', nxt)
      if nxt ~= '' then
        put[np + 1], put[np + 2], np = nxt, jid, np + 2
        if np == 1000 then
          redis.call('ZADD', KEYS[1], unpack(put, 1, np))
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
    local def = redis.call('HGET', key, 'def') or ''
    slow[ns + 1], slow[ns + 2], slow[ns + 3] = member, score, gen
    slow[ns + 4], slow[ns + 5], slow[ns + 6] = def, state, queue
    ns = ns + 6
    entry[ne + 1], entry[ne + 2] = member, score .. '|' .. gen
  end
  owed[no + 1], owed[no + 2] = again, owe
  ne, no = ne + 2, no + 2
  if ne == 1000 then flush() end
end
if ne > 0 then flush() end
if np > 0 then redis.call('ZADD', KEYS[1], unpack(put, 1, np)) end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', entries,
                        'STREAMS', KEYS[2], '>')
local ids = {}
for i, e in ipairs(read[1][2]) do ids[i] = e[1] end
return {now, ids, fast, slow}
"""
)

#: Put a batch of dispatched jobs back into the due set at their next occurrence, each
#: unless it was deleted, replaced (its writer already scheduled it) or stopped being
#: Enabled; one call per batch (the due set gets one ZADD per 500 jobs). A job whose
#: rule the claim script can follow gets its ``cadence`` (see CLAIM_DUE), stamped with
#: the gen it was planned from.
#: KEYS: due. ARGV: job key prefix, then five per job: jid, claimed gen, next ms
#: ('' = none), occurrence ms, cadence ('' = none). Returns how many were put back.
ADVANCE = """
local put, back = {}, 0
for i = 2, #ARGV, 5 do
  local key = ARGV[1] .. ARGV[i]
  local h = redis.call('HMGET', key, 'gen', 'state')
  if h[1] and h[1] == ARGV[i + 1] then
    redis.call('HSET', key, 'lastOccurrence', ARGV[i + 3], 'nextExecutionTime', ARGV[i + 2])
    if ARGV[i + 4] ~= '' then
      redis.call('HSET', key, 'cadence', ARGV[i + 1] .. '|' .. ARGV[i + 4])
    end
    if h[2] == 'Enabled' and ARGV[i + 2] ~= '' then
      put[#put + 1] = ARGV[i + 2]
      put[#put + 1] = ARGV[i]
      back = back + 1
      if #put == 1000 then
        redis.call('ZADD', KEYS[1], unpack(put))
        put = {}
      end
    end
  end
end
if #put > 0 then redis.call('ZADD', KEYS[1], unpack(put)) end
return back
"""

#: Record one attempt of one action: the history entry, the counters, the final state,
#: the occurrence's lease and the execution ledger (this attempt leaves it; the one that
#: follows, a retry or the error action, enters it), all or nothing. Returns 0 when the
#: job no longer exists.
#: KEYS: job hash, history, due, lease, finished index, ledger.
#: ARGV: entry JSON, history cap, counters flags "<first attempt><failed><faulted>"
#: ('1'/'0' each), last execution ms, final state ('' = none), finished ms, jid,
#: lease-done TTL ms, ledger member, follow-up ledger member ('' = none), its due ms.
RECORD_ATTEMPT = """
redis.call('ZREM', KEYS[6], ARGV[9])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[10] ~= '' then redis.call('ZADD', KEYS[6], ARGV[11], ARGV[10]) end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
local flags = ARGV[3]
if string.sub(flags, 1, 1) == '1' then
  redis.call('HINCRBY', KEYS[1], 'executionCount', 1)
  if string.sub(flags, 2, 2) == '1' then
    redis.call('HINCRBY', KEYS[1], 'failureCount', 1)
  end
end
if string.sub(flags, 3, 3) == '1' then
  redis.call('HINCRBY', KEYS[1], 'faultedCount', 1)
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'lastExecutionTime', ARGV[4])
end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'state') == 'Enabled' then
  redis.call('HSET', KEYS[1], 'state', ARGV[5], 'finishedAt', ARGV[6], 'nextExecutionTime', '')
  redis.call('ZREM', KEYS[3], ARGV[7])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7])
end
redis.call('SET', KEYS[4], 'done', 'PX', tonumber(ARGV[8]))
return 1
"""

#: Mark an occurrence as the job's running one (concurrencyPolicy Forbid/Replace).
#: Forbid: refused while another occurrence runs (returns it). Replace: takes over and
#: flags the other one cancelled (returns it). Returns false when nothing else ran.
#: KEYS: running marker. ARGV: occurrence ms, ttl ms, mode, cancelled-flag key prefix.
CLAIM_RUNNING = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  if ARGV[3] == 'Forbid' then return current end
  redis.call('SET', ARGV[4] .. current, ARGV[1], 'PX', tonumber(ARGV[2]))
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
if current and current ~= ARGV[1] then return current end
return false
"""

#: Clear the running marker if it still names this occurrence. KEYS: marker. ARGV: occ ms.
RELEASE_RUNNING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

#: Create or replace one job: its fields, a new generation (and the cadence stamped with
#: it, see CLAIM_DUE), its collection index entry and its place in the due set. Returns
#: 1 when it existed before.
#: KEYS: job hash, collection's job index, due. ARGV: jid, name, next ms ('' = not
#: scheduled), cadence ('' = none), then field/value pairs.
PUT_JOB = """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[1], 'finishedAt', 'cadence')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'cadence', gen .. '|' .. ARGV[4]) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return existed
"""

#: Take an attempt's lease, if the execution ledger owes the attempt: a task message that
#: nobody handed out (forged into the broker, through Flower or any client) has no ledger
#: entry and runs nothing. Checked here, so it costs no round trip of its own.
#: KEYS: lease, ledger. ARGV: ttl ms, the attempt's ledger member.
#: Returns {1} when taken, {0, 'done'} when the attempt was recorded already,
#: {0, 'not-owed'} when the ledger does not hold it, {0, 'running', pttl} when another
#: worker holds it.
ACQUIRE_LEASE = """
local lease, ledger = KEYS[1], KEYS[2]
local ttl_ms, member = tonumber(ARGV[1]), ARGV[2]
if redis.call('SET', lease, 'running', 'NX', 'PX', ttl_ms) then
  if redis.call('ZSCORE', ledger, member) then return {1} end
  redis.call('DEL', lease)
  return {0, 'not-owed'}
end
if redis.call('GET', lease) == 'done' then return {0, 'done'} end
return {0, 'running', redis.call('PTTL', lease)}
"""


#: Take up to ARGV[1] ledger entries whose time has come (attempts published but never
#: recorded: their message was lost), by Redis's clock, and push each one's next time to
#: now + ARGV[2] ms, so exactly one beat delivers each again per period.
#: KEYS: ledger. Returns the members.
REDELIVER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,
                           tonumber(ARGV[1]))
local again = now + tonumber(ARGV[2])
for _, member in ipairs(members) do
  redis.call('ZADD', KEYS[1], again, member)
end
return members
"""
