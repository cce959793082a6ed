-- record_attempt(keys=[job, history, due, lease, finished, ledger, taken],
--                args=[entry, history_cap, flags, last_execution_ms, final_state,
--                      finished_ms, jid, lease_done_ms, ledger_member,
--                      follow_up_member, follow_up_due_ms])
--
-- Records one attempt of one action: the history entry, the counters, the final state,
-- the occurrence's lease and the execution ledger (this attempt leaves it; the one that
-- follows, a retry or the error action, enters it), all or nothing.
--
-- Keys:
--   job       hash    the job: executionCount, failureCount, faultedCount,
--                     lastExecutionTime, state, finishedAt, nextExecutionTime
--   history   list    the job's history entries (JSON), newest first
--   due       zset    member: a job id; the job leaves it when it reaches a final state
--   lease     string  the attempt's lease; set to 'done'
--   finished  zset    member: a job id; score: finishedAt, epoch ms
--   ledger    zset    member: an attempt "jid|m|occ ms|attempt|s" (codecs.LedgerEntry);
--                     score: when to deliver it again, epoch ms
--   taken     zset    member: a ledger member a worker took (see acquire_lease)
--
-- Arguments:
--   entry              string  the history entry, JSON; its id is a codecs.HistoryId
--   history_cap        int     entries kept in the history list
--   flags              string  three characters, '1' or '0' each: the attempt was a first
--                              attempt, it failed, the job is faulted
--   last_execution_ms  string  lastExecutionTime, epoch ms; '' leaves it
--   final_state        string  the job's final state (Completed, Faulted); '' for none
--   finished_ms        string  finishedAt, epoch ms, with a final state
--   jid                string  the job
--   lease_done_ms      int     how long the lease stays 'done'
--   ledger_member      string  this attempt in the ledger (codecs.LedgerEntry)
--   follow_up_member   string  the attempt that follows in the ledger; '' for none
--   follow_up_due_ms   string  when the ledger delivers the follow-up again, epoch ms
--
-- Returns: int, 1; 0 when the job no longer exists (only the ledger was written); 2 when
--   the attempt was recorded already (nothing was written: each attempt is recorded once).
local job_key, history_key, due_key = KEYS[1], KEYS[2], KEYS[3]
local lease_key, finished_key, ledger_key, taken_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local entry, history_cap, flags = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local last_execution_ms, final_state, finished_ms = ARGV[4], ARGV[5], ARGV[6]
local jid, lease_done_ms, ledger_member = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local follow_up_member, follow_up_due_ms = ARGV[10], ARGV[11]

-- Recorded already: a worker slower than its lease, whose attempt another redid meanwhile.
if redis.call('GET', lease_key) == 'done' then return 2 end
redis.call('ZREM', ledger_key, ledger_member)
redis.call('ZREM', taken_key, ledger_member)
if redis.call('EXISTS', job_key) == 0 then return 0 end
if follow_up_member ~= '' then
  redis.call('ZADD', ledger_key, follow_up_due_ms, follow_up_member)
end
redis.call('LPUSH', history_key, entry)
redis.call('LTRIM', history_key, 0, history_cap - 1)
local first_attempt = string.sub(flags, 1, 1) == '1'
local failed = string.sub(flags, 2, 2) == '1'
local faulted = string.sub(flags, 3, 3) == '1'
if first_attempt then
  redis.call('HINCRBY', job_key, 'executionCount', 1)
  if failed then
    redis.call('HINCRBY', job_key, 'failureCount', 1)
  end
end
if faulted then
  redis.call('HINCRBY', job_key, 'faultedCount', 1)
end
if last_execution_ms ~= '' then
  redis.call('HSET', job_key, 'lastExecutionTime', last_execution_ms)
end
if final_state ~= '' and redis.call('HGET', job_key, 'state') == 'Enabled' then
  redis.call('HSET', job_key, 'state', final_state, 'finishedAt', finished_ms,
             'nextExecutionTime', '')
  redis.call('ZREM', due_key, jid)
  redis.call('ZADD', finished_key, finished_ms, jid)
end
redis.call('SET', lease_key, 'done', 'PX', lease_done_ms)
return 1
