-- redeliver(keys=[ledger], args=[count, redelivery_ms])
--
-- Takes up to `count` ledger entries whose time has come (attempts published but never
-- recorded: their message was lost), by Redis's clock, and pushes each one's time on to
-- now + `redelivery_ms`, so exactly one beat delivers each again per period.
--
-- Keys:
--   ledger  zset  member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry);
--                 score: when to deliver it again, epoch ms
--
-- Arguments:
--   count          int  most entries to take
--   redelivery_ms  int  how long until an entry taken is owed again
--
-- Returns: the members taken.
local ledger_key = KEYS[1]
local count, redelivery_ms = tonumber(ARGV[1]), tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', ledger_key, '-inf', now, 'LIMIT', 0, count)
local again = now + redelivery_ms
for _, member in ipairs(members) do
  redis.call('ZADD', ledger_key, again, member)
end
return members
