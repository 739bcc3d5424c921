-- uses: metrics, webhooks
-- One job event: appended to the global stream (its entry id is the event id), to the job's
-- own stream under the same id, and published with the id first, in one step, so no reader
-- ever sees an event out of order or hears of one not yet in the streams. `payload` is the
-- event as a JSON object without its id; `webhook_url`, when given and not empty, makes the event
-- a webhook delivery too (lib/webhooks.lua). Returns the event id.
local function append_event(stream, channel, maxlen, job_maxlen, ttl, job_id, payload, event, at, webhook_url)
  jobsvc_metrics(event, job_id, at)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'job_id', job_id, 'data', payload)
  local job_stream = '{{JOB_EVENTS_PREFIX}}' .. job_id
  redis.call('XADD', job_stream, 'MAXLEN', '~', job_maxlen, id, 'data', payload)
  redis.call('EXPIRE', job_stream, ttl)
  local published = '{"id":"' .. id .. '",' .. string.sub(payload, 2)
  redis.call('PUBLISH', channel, published)
  if webhook_url and webhook_url ~= '' then webhook_outbox(id, job_id, event, published, webhook_url, at) end
  return id
end
