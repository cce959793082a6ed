-- redeliver(keys=[ledger, taken], args=[count, redelivery_ms])
--
-- Takes the ledger's attempts to deliver again, by Redis's clock, in two kinds:
--
-- * stalled: taken by a worker whose lease has expired without a record (the worker
--   died mid-attempt). Each leaves the taken set (the attempt is handed out anew) and its
--   ledger time is pushed on to now + `redelivery_ms`.
-- * overdue: up to `count` entries whose ledger time has come (published, never taken
--   or never recorded: their message was lost, or still waits behind a backlog). Each
--   one's time is pushed on to now + `redelivery_ms`.
--
-- so exactly one beat delivers each again per period. A taken member no longer in the
-- ledger (recorded, or forgotten) is only dropped from the taken set.
--
-- Keys:
--   ledger  zset  member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry);
--                 score: when to deliver it again, epoch ms
--   taken   zset  member: a ledger member a worker took; score: its lease's expiry
--
-- Arguments:
--   count          int  most entries of each kind to take
--   redelivery_ms  int  how long until an entry taken is owed again
--
-- Returns: {stalled members, overdue members}.
local ledger_key, taken_key = KEYS[1], KEYS[2]
local count, redelivery_ms = tonumber(ARGV[1]), tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local again = now + redelivery_ms

local stalled = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', taken_key, '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', taken_key, member)
  if redis.call('ZSCORE', ledger_key, member) then
    redis.call('ZADD', ledger_key, again, member)
    stalled[#stalled + 1] = member
  end
end

local overdue = redis.call('ZRANGEBYSCORE', ledger_key, '-inf', now, 'LIMIT', 0, count)
for _, member in ipairs(overdue) do
  redis.call('ZADD', ledger_key, again, member)
end
return {stalled, overdue}
