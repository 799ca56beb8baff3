-- Forgets up to ARGV[1] acknowledged tasks of a queue: apalis-redis keeps every done
-- task's id, payload and metadata forever. Job records (in the database) are the
-- history; the queue needs none of it. Bounded per call, so Redis never blocks long.
--
-- KEYS[1] done set   KEYS[2] task data hash   KEYS[3] task metadata key prefix
-- Returns the number of tasks forgotten.
local ids = redis.call('spop', KEYS[1], tonumber(ARGV[1]))
for _, id in ipairs(ids) do
    redis.call('hdel', KEYS[2], id)
    redis.call('del', KEYS[3] .. ':' .. id)
end
return #ids
