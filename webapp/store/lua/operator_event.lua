-- Record one operator event (webapp/store/opevents.py): appended to the operator event stream
-- and published with its id, in one step (as lua/queue_pause.lua does for queue events).
-- KEYS: 1 the operator event stream (`jobsvc:queue-events`).
-- ARGV: 1 channel, 2 stream maxlen, 3 the event as a JSON object without its id, 4 its kind
--       (the stream entry's `kind` field: 'bulk' for bulk.* events).
-- Returns the event id.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'kind', ARGV[4], 'data', ARGV[3])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '",' .. string.sub(ARGV[3], 2))
return id
