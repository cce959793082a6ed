-- history_changed(keys=[history, ledger, taken], args=[history_id, redelivery_ms])
--
-- Once per change of the store's history, across every beat: when the server's
-- replication id differs from the one recorded (a failover promoted a replica, or the
-- primary restarted from its append-only file), records the new one and hands out anew
-- every attempt of the execution ledger. The task messages published shortly before the
-- change may be gone with the old primary while their ledger entries were kept, and
-- nothing tells which: the beat that gets them publishes each again at once, whatever
-- waits in its queue, and an attempt that did run (or runs from its first message) is
-- dropped by its lease. Each entry is due again a period later, as after any delivery,
-- and leaves the taken set (a worker that takes the new message books it again).
--
-- The first call on a store without a recorded id only records it: nothing is known to
-- have changed.
--
-- Keys:
--   history  string  the replication id the beats saw last (scheduler.store.keys)
--   ledger   zset    member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry);
--                    score: when to deliver it again, epoch ms
--   taken    zset    member: a ledger member a worker took; score: its lease's expiry
--
-- Arguments:
--   history_id     string  the server's replication id (INFO replication's master_replid)
--   redelivery_ms  int     how long until an entry handed out is owed again
--
-- Returns: the ledger's members handed out anew (empty when the history is the same).
local history_key, ledger_key, taken_key = KEYS[1], KEYS[2], KEYS[3]
local history_id, redelivery_ms = ARGV[1], tonumber(ARGV[2])
-- ZADD arguments per call (Lua's unpack has a stack limit).
local ZADD_CHUNK = 1000

local seen = redis.call('GET', history_key)
if seen == history_id then return {} end
redis.call('SET', history_key, history_id)
if not seen then return {} end

local t = redis.call('TIME')
local again = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + redelivery_ms
local members = redis.call('ZRANGE', ledger_key, 0, -1)
local put = {}
for _, member in ipairs(members) do
  put[#put + 1] = again
  put[#put + 1] = member
  if #put == ZADD_CHUNK then
    redis.call('ZADD', ledger_key, unpack(put))
    put = {}
  end
end
if #put > 0 then redis.call('ZADD', ledger_key, unpack(put)) end
redis.call('DEL', taken_key)
return members
