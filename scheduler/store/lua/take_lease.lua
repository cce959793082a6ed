-- take_lease(lease_key, ledger_key, taken_key, ttl_ms, ledger_member): a library function,
-- joined in front of the scripts that take an attempt's lease (scheduler.store.scripts).
--
-- Takes an attempt's lease, if the execution ledger owes the attempt: a task message
-- that nobody handed out (forged into the broker, through Flower or any client) has no
-- ledger entry and runs nothing. Checked here, so it costs no round trip of its own.
-- The attempt taken is booked as taken until its lease expires, by Redis's clock: should
-- the worker die mid-call, a beat delivers it again then, not a redelivery timeout later.
--
-- Keys:
--   lease_key   string  the attempt's lease: 'running' while held, 'done' once recorded
--   ledger_key  zset    member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry)
--   taken_key   zset    member: a ledger member a worker took; score: its lease's expiry,
--                       epoch ms
--
-- Arguments:
--   ttl_ms         number  how long the lease is held (the action's timeout + a margin)
--   ledger_member  string  the attempt in the ledger (codecs.LedgerEntry)
--
-- Returns: {1} when taken; {0, 'done'} when the attempt was recorded already;
--   {0, 'not-owed'} when the ledger does not hold it; {0, 'running', pttl ms} when
--   another worker holds it.
local function take_lease(lease_key, ledger_key, taken_key, ttl_ms, ledger_member)
  if redis.call('SET', lease_key, 'running', 'NX', 'PX', ttl_ms) then
    if redis.call('ZSCORE', ledger_key, ledger_member) then
      local t = redis.call('TIME')
      local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      redis.call('ZADD', taken_key, now + ttl_ms, ledger_member)
      return {1}
    end
    redis.call('DEL', lease_key)
    return {0, 'not-owed'}
  end
  if redis.call('GET', lease_key) == 'done' then return {0, 'done'} end
  return {0, 'running', redis.call('PTTL', lease_key)}
end
