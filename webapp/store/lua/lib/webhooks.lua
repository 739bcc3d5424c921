-- Webhooks' outbox (webapp/store/webhooks.py). A job event that the job's webhook subscribes to
-- becomes a delivery in the same script that records the event, so a delivery exists if and
-- only if its event does, and no job without a webhook pays anything for the feature.
-- A delivery's id is its event's id. Due deliveries wait per target host, in WEBHOOK_DUE_HOST
-- sets (by due time, ms); WEBHOOK_DUE holds each host with something waiting, scored by its
-- earliest due time, so a claim can skip a host that already has its share of the senders
-- without reading, let alone claiming, that host's backlog (lua/webhook_claim.lua).

-- The host part of a URL as a key ("a.example.com", "127.0.0.1", "[::1]"), as
-- webapp/store/webhooks.py `host_key` computes it: a trailing dot names the same host.
local function webhook_host(url)
  local authority = string.match(url, '^[%a][%w+.-]*://([^/?#]*)') or ''
  authority = string.match(authority, '@(.*)$') or authority
  local host = string.match(authority, '^(%[[^%]]*%])') or string.match(authority, '^([^:]*)')
  return string.lower((string.gsub(host or '', '%.+$', '')))
end

-- (Re)schedule delivery `id` of `host` at `due` (ms), keeping the host's place in WEBHOOK_DUE.
local function webhook_schedule(host, id, due)
  redis.call('ZADD', '{{WEBHOOK_DUE_HOST_PREFIX}}' .. host, due, id)
  local first = redis.call('ZRANGE', '{{WEBHOOK_DUE_HOST_PREFIX}}' .. host, 0, 0, 'WITHSCORES')
  redis.call('ZADD', '{{WEBHOOK_DUE}}', first[2], host)
end

-- Take delivery `id` of `host` off the schedule (it ended).
local function webhook_unschedule(host, id)
  local key = '{{WEBHOOK_DUE_HOST_PREFIX}}' .. host
  redis.call('ZREM', key, id)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[1] then redis.call('ZADD', '{{WEBHOOK_DUE}}', first[2], host) else redis.call('ZREM', '{{WEBHOOK_DUE}}', host) end
end

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
  local host = webhook_host(url)
  redis.call('HSET', key, 'job_id', job_id, 'event', event, 'url', url, 'host', host, 'payload', published,
    'state', 'pending', 'created', at_ms, 'since', at_ms, 'attempts', 0, 'next', at_ms)
  webhook_schedule(host, event_id, at_ms)
  redis.call('RPUSH', '{{WEBHOOK_JOB_PREFIX}}' .. job_id, event_id)
  if redis.call('LLEN', '{{WEBHOOK_WAKE}}') < 16 then redis.call('RPUSH', '{{WEBHOOK_WAKE}}', '1') end
end
