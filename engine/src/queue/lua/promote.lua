-- Moves at most ARGV[2] due tasks from Conveyor's delayed set onto the active list.
-- The bound keeps every `unpack` far below Lua's stack limit, whatever the backlog;
-- the caller repeats while a full chunk was moved.
--
-- KEYS[1] delayed sorted set   KEYS[2] active list   KEYS[3] signal list
-- ARGV[1] now, in ms           ARGV[2] chunk size    ARGV[3] wake channel
-- Returns the number of tasks moved.
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
    redis.call('rpush', KEYS[2], unpack(ids))
    redis.call('zrem', KEYS[1], unpack(ids))
    redis.call('del', KEYS[3])
    redis.call('lpush', KEYS[3], 1)
    redis.call('publish', ARGV[3], #ids)
end
return #ids
