-- uses: metrics, webhooks
-- One job event: appended to the global stream (its entry id is the event id), to the job's
-- own stream under the same id, and published with the id first, in one step, so no reader
-- ever sees an event out of order or hears of one not yet in the streams. `payload` is the
-- event as a JSON object without its id; `webhook_url`, when given and not empty, makes the event
-- a webhook delivery too (lib/webhooks.lua). `at` is the writer's clock (Unix seconds, the
-- caller's text: a number Lua turns back into text costs a printf per use); `began`, when the
-- caller knows when this run started (STEP's finish), spares a lookup. Returns the event id.
local function append_event(stream, channel, maxlen, job_maxlen, ttl, job_id, payload, event, at, webhook_url, began)
  jobsvc_metrics(event, job_id, at, began)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'job_id', job_id, 'data', payload)
  local job_stream = '{{JOB_EVENTS_PREFIX}}' .. job_id
  redis.call('XADD', job_stream, 'MAXLEN', '~', job_maxlen, id, 'data', payload)
  redis.call('EXPIRE', job_stream, ttl)
  local published = '{"id":"' .. id .. '",' .. string.sub(payload, 2)
  redis.call('PUBLISH', channel, published)
  if webhook_url and webhook_url ~= '' then webhook_outbox(id, job_id, event, published, webhook_url, tonumber(at)) end
  return id
end
