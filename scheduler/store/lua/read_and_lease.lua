-- read_and_lease(keys=[job, collection, lease, ledger, taken], args=[ttl_ms, ledger_member])
--
-- A worker's first call for an attempt, in one round trip: reads the job and its
-- collection's state and, when both are Enabled, takes the attempt's lease as
-- acquire_lease.lua does (take_lease.lua, joined in front: the same ledger check, the same
-- taken booking). A job or a collection that is not Enabled gets no lease here, so an
-- attempt that does not run leaves none behind: the worker decides whether it runs (a
-- finished job still owes what it handed out before) and then takes the lease with
-- acquire_lease.lua.
--
-- Keys:
--   job         hash    the job (every field is read; 'state' decides the lease)
--   collection  hash    the job's collection ('state' is read)
--   lease       string  the attempt's lease: 'running' while held, 'done' once recorded
--   ledger      zset    member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry)
--   taken       zset    member: a ledger member a worker took; score: its lease's expiry,
--                       epoch ms
--
-- Arguments:
--   ttl_ms         string  how long the lease is held, ms (the default action timeout +
--                          a margin); '' to read only
--   ledger_member  string  the attempt in the ledger (codecs.LedgerEntry)
--
-- Returns: {fields, collection_state, lease}: the job's fields and values as HGETALL gives
--   them (empty when the job does not exist), the collection's state (nil when it does not
--   exist), and take_lease's reply, or {} when no lease was tried.
local job_key, collection_key = KEYS[1], KEYS[2]
local lease_key, ledger_key, taken_key = KEYS[3], KEYS[4], KEYS[5]
local ttl_ms, ledger_member = ARGV[1], ARGV[2]

local fields = redis.call('HGETALL', job_key)
local collection_state = redis.call('HGET', collection_key, 'state')
if ttl_ms == '' or #fields == 0 or collection_state ~= 'Enabled'
    or redis.call('HGET', job_key, 'state') ~= 'Enabled' then
  return {fields, collection_state, {}}
end
local lease = take_lease(lease_key, ledger_key, taken_key, tonumber(ttl_ms), ledger_member)
return {fields, collection_state, lease}
