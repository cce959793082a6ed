-- claim_running(keys=[running], args=[occurrence_ms, ttl_ms, mode, cancelled_prefix])
--
-- Marks an occurrence as its job's running one (concurrencyPolicy Forbid or Replace).
-- Forbid: refused while another occurrence runs. Replace: takes over, and flags the
-- other one cancelled.
--
-- Keys:
--   running  string  the job's running occurrence, epoch ms (KeySchema.running)
--   and `cancelled_prefix` .. occurrence: string, the occurrence that replaced it
--
-- Arguments:
--   occurrence_ms     string  the occurrence that starts, epoch ms
--   ttl_ms            int     how long the marks live (the action's timeout + a margin)
--   mode              string  'Forbid' or 'Replace'
--   cancelled_prefix  string  the job's cancelled-flag key prefix (KeySchema.cancelled_prefix)
--
-- Returns: the other running occurrence (Forbid: which blocks this one; Replace: which
--   this one cancelled), or false when no other one ran.
local running_key = KEYS[1]
local occurrence_ms, ttl_ms = ARGV[1], tonumber(ARGV[2])
local mode, cancelled_prefix = ARGV[3], ARGV[4]

local current = redis.call('GET', running_key)
if current and current ~= occurrence_ms then
  if mode == 'Forbid' then return current end
  redis.call('SET', cancelled_prefix .. current, occurrence_ms, 'PX', ttl_ms)
end
redis.call('SET', running_key, occurrence_ms, 'PX', ttl_ms)
if current and current ~= occurrence_ms then return current end
return false
