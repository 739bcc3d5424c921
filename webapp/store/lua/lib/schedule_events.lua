-- One schedule event (schedule.created, schedule.run, ...): appended to the schedule event
-- stream (its entry id is the event id) and published with the id first, in one step, like a
-- job event (lib/events.lua) but on a stream and channel of their own, so job-event consumers
-- never meet an event without a job. `payload` is the event as a JSON object without its id.
-- Counts the event by name per schedule in the metrics hash (field "<schedule>\t<event>"), unless
-- `metrics_key` is '' (a deletion, which drops the schedule's counters).
local function append_schedule_event(stream, channel, maxlen, payload, metrics_key, schedule, event)
  if payload == '' then return nil end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'schedule', schedule, 'data', payload)
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(payload, 2))
  if metrics_key ~= '' then redis.call('HINCRBY', metrics_key, schedule .. '\t' .. event, 1) end
  return id
end
