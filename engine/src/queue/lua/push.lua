-- Conveyor's push onto an apalis-redis queue.
--
-- Tasks due now go straight onto the active list; delayed ones go onto Conveyor's own
-- delayed set (KEYS[5]), which `promote.lua` drains in bounded chunks. apalis-redis's
-- own scheduled set is never used: its fetch script moves every due member with a
-- single `unpack`, which fails once a few thousand tasks are due at once.
--
-- KEYS[1] task data hash       KEYS[2] task metadata key prefix
-- KEYS[3] active list          KEYS[4] signal list
-- KEYS[5] delayed sorted set
-- ARGV[1] wake channel         ARGV[2] now, in ms since the epoch
-- ARGV[3..] triples: delivery id, payload, due time in ms (0 = now)
-- A delivery id already in the data hash is refused: pushing the same delivery twice
-- queues it once.
-- Returns, for each triple in order, 1 if it was queued and 0 if it was refused.
local queued = {}
local ready = 0
local now = tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
    local id = ARGV[i]
    local payload = ARGV[i + 1]
    local due = tonumber(ARGV[i + 2])
    if redis.call('hsetnx', KEYS[1], id, payload) == 1 then
        redis.call('hset', KEYS[2] .. ':' .. id,
            'attempts', 0, 'max_attempts', 1, 'status', 'Pending', 'idempotency_key', '')
        if due > now then
            redis.call('zadd', KEYS[5], due, id)
        else
            redis.call('rpush', KEYS[3], id)
            ready = ready + 1
        end
        queued[#queued + 1] = 1
    else
        queued[#queued + 1] = 0
    end
end
if ready > 0 then
    redis.call('del', KEYS[4])
    redis.call('lpush', KEYS[4], 1)
    redis.call('publish', ARGV[1], ready)
end
return queued
