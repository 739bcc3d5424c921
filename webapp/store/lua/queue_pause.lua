-- Pause or resume one queue (webapp/store/pauses.py), its event with it, in one step.
-- KEYS: 1 the paused-queues hash, 2 the queue event stream, 3 the queue's list, 4 its wake list.
-- ARGV: 1 'pause' or 'resume', 2 queue name, 3 what to store when pausing ({"at", "by"} as JSON),
--       4 channel, 5 stream maxlen, 6 the event as a JSON object without its id,
--       7 most wake tokens to push on resume.
-- Pausing a paused queue, or resuming one that is not paused, changes nothing and records no
-- event. A resume pushes a wake token per queued job (at most ARGV[7]), so idle workers blocked on
-- the queue's wake list start at once (STEP keeps at most one token per queued job after that).
-- Returns {changed (0/1), the stored pause ('' when not paused), the event id or ''}.
local changed = 0
if ARGV[1] == 'pause' then
  changed = redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
else
  changed = redis.call('HDEL', KEYS[1], ARGV[2])
  if changed == 1 then
    local tokens = math.min(redis.call('LLEN', KEYS[3]), tonumber(ARGV[7]))
    for _ = 1, tokens do redis.call('RPUSH', KEYS[4], '1') end
  end
end
local id = ''
if changed == 1 then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'queue', ARGV[2], 'data', ARGV[6])
  redis.call('PUBLISH', ARGV[4], '{"id":"' .. id .. '",' .. string.sub(ARGV[6], 2))
end
return {changed, redis.call('HGET', KEYS[1], ARGV[2]) or '', id}
