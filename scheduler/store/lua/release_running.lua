-- release_running(keys=[running], args=[occurrence_ms])
--
-- Clears the job's running mark if it still names this occurrence.
--
-- Keys:
--   running  string  the job's running occurrence, epoch ms (KeySchema.running)
--
-- Arguments:
--   occurrence_ms  string  the occurrence that ended, epoch ms
--
-- Returns: int, 1.
local running_key = KEYS[1]
local occurrence_ms = ARGV[1]

if redis.call('GET', running_key) == occurrence_ms then redis.call('DEL', running_key) end
return 1
