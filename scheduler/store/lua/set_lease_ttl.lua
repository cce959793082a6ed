-- set_lease_ttl(keys=[lease, taken], args=[ttl_ms, ledger_member])
--
-- Makes a held lease expire ttl_ms from now, and the attempt's taken booking with it. A
-- worker took the lease in read_and_lease.lua for the default action timeout before it
-- had read the job; when the action has a timeout of its own, this sets the lease by it
-- before the action starts. A lease that is no longer held ('done' once recorded, or
-- expired) is left alone, and nothing is booked as taken again.
--
-- Keys:
--   lease  string  the attempt's lease: 'running' while held, 'done' once recorded
--   taken  zset    member: a ledger member a worker took; score: its lease's expiry,
--                  epoch ms
--
-- Arguments:
--   ttl_ms         int     how long the lease is held from now, ms
--   ledger_member  string  the attempt in the ledger (codecs.LedgerEntry)
--
-- Returns: int, 1 when the lease was held and is set; else 0.
local lease_key, taken_key = KEYS[1], KEYS[2]
local ttl_ms, ledger_member = tonumber(ARGV[1]), ARGV[2]

if redis.call('GET', lease_key) ~= 'running' then return 0 end
redis.call('PEXPIRE', lease_key, ttl_ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', taken_key, 'XX', now + ttl_ms, ledger_member)
return 1
