-- acquire_lease(keys=[lease, ledger, taken], args=[ttl_ms, ledger_member])
--
-- Takes an attempt's lease, if the execution ledger owes the attempt (take_lease.lua, joined
-- in front). A worker's first call, read_and_lease.lua, takes it in the same round trip
-- when the job and its collection are Enabled; this script is for the attempts that may
-- run otherwise (a finished job's error action, or what it handed out before it finished)
-- and for the ones whose job cannot be read.
--
-- Keys:
--   lease   string  the attempt's lease: 'running' while held, 'done' once recorded
--   ledger  zset    member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry)
--   taken   zset    member: a ledger member a worker took; score: its lease's expiry,
--                   epoch ms
--
-- Arguments:
--   ttl_ms         int     how long the lease is held (the action's timeout + a margin)
--   ledger_member  string  the attempt in the ledger (codecs.LedgerEntry)
--
-- Returns: take_lease's reply: {1} when taken; {0, 'done'} when the attempt was recorded
--   already; {0, 'not-owed'} when the ledger does not hold it; {0, 'running', pttl ms}
--   when another worker holds it.
local lease_key, ledger_key, taken_key = KEYS[1], KEYS[2], KEYS[3]
local ttl_ms, ledger_member = tonumber(ARGV[1]), ARGV[2]

return take_lease(lease_key, ledger_key, taken_key, ttl_ms, ledger_member)
