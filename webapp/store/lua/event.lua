-- uses: events
-- Record one job event (webapp/store/events.py, EventLog).
-- KEYS[1] the global event stream.
-- ARGV: 1 channel, 2 global maxlen, 3 job stream maxlen, 4 job stream ttl (s), 5 job id,
--       6 payload (a JSON object), 7 event name, 8 the writer's clock (Unix seconds),
--       9 the job's webhook URL when it subscribes to this event, else '',
--       10 when the run this event ends began (Unix seconds), else '' (the run is not timed).
return append_event(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
