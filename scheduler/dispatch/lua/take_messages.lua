-- take_messages(keys=[queue, unacked, unacked_index], args=[count, now_s])
--
-- Takes up to `count` messages off a queue of kombu's Redis transport and books each as
-- unacknowledged, as kombu's own QoS.append would, in one step: a message is never off
-- its queue without being booked, so a worker killed at any moment loses none (kombu's
-- BRPOP, then the booking as a second command, can lose one).
--
-- Keys:
--   queue          list    kombu's queue: messages LPUSHed, taken from the right (FIFO)
--   unacked        hash    kombu's unacked_key: delivery tag -> JSON [message, exchange,
--                          routing key]
--   unacked_index  zset    kombu's unacked_index_key: delivery tag -> when booked (s)
--
-- Arguments:
--   count  int    most messages to take
--   now_s  float  the time of booking, epoch seconds (kombu's restore compares it with
--                 the visibility timeout)
--
-- Returns: the messages taken, oldest first, as kombu's JSON payloads. One without a
--   delivery tag (not kombu's) is returned unbooked.
local queue_key, unacked_key, index_key = KEYS[1], KEYS[2], KEYS[3]
local count, now_s = tonumber(ARGV[1]), ARGV[2]

local items = redis.call('RPOP', queue_key, count)
if not items then return {} end
for _, item in ipairs(items) do
  local ok, message = pcall(cjson.decode, item)
  local properties = ok and type(message) == 'table' and message['properties']
  local tag = type(properties) == 'table' and properties['delivery_tag']
  local info = type(properties) == 'table' and properties['delivery_info']
  if type(tag) == 'string' and type(info) == 'table' then
    redis.call('ZADD', index_key, now_s, tag)
    -- The message as it came (not re-encoded), then its exchange and routing key.
    redis.call('HSET', unacked_key, tag, '[' .. item .. ',' .. cjson.encode(info['exchange'])
      .. ',' .. cjson.encode(info['routing_key']) .. ']')
  end
end
return items
