-- Webhooks' outbox (webapp/store/webhooks.py). A job event that the job's webhook subscribes to
-- becomes a delivery in the same script that records the event, so a delivery exists if and
-- only if its event does, and no job without a webhook pays anything for the feature.
-- A delivery's id is its event's id; the delivery threads of worker.py claim due deliveries
-- from WEBHOOK_DUE (lua/webhook_claim.lua).

-- The URL to deliver `event` to, if the job's webhook (its meta, decoded) subscribes to it.
local function webhook_target(spec, event)
  if type(spec) ~= 'table' or type(spec['url']) ~= 'string' or type(spec['events']) ~= 'table' then return nil end
  for _, wanted in ipairs(spec['events']) do
    if wanted == event then return spec['url'] end
  end
  return nil
end

-- `published` is the event as published (a JSON object with its id); `at` the writer's clock, s.
local function webhook_outbox(event_id, job_id, event, published, url, at)
  local key = '{{WEBHOOK_PREFIX}}' .. event_id
  local at_ms = math.floor(at * 1000)
  redis.call('HSET', key, 'job_id', job_id, 'event', event, 'url', url, 'payload', published,
    'state', 'pending', 'created', at_ms, 'since', at_ms, 'attempts', 0, 'next', at_ms)
  redis.call('ZADD', '{{WEBHOOK_DUE}}', at_ms, event_id)
  redis.call('RPUSH', '{{WEBHOOK_JOB_PREFIX}}' .. job_id, event_id)
  if redis.call('LLEN', '{{WEBHOOK_WAKE}}') < 16 then redis.call('RPUSH', '{{WEBHOOK_WAKE}}', '1') end
end
