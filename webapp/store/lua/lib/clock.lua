-- Redis's own clock as the worker's code would write it, for a claim that runs later than it was
-- sent (STEP queued behind the idle worker's BLPOP runs when the wait ends, up to a wake timeout
-- after the worker built its arguments). tests/test_lua_clock.py compares every form with Python's.

-- The calendar date of a day counted from 1970-01-01 (the proleptic Gregorian calendar, in
-- 400-year eras of 146,097 days; years start in March so that leap days fall at the end).
local function civil_date(days)
  days = days + 719468  -- counted from 0000-03-01
  local era = math.floor(days / 146097)
  local day_of_era = days - era * 146097
  local year_of_era = math.floor((day_of_era - math.floor(day_of_era / 1460) + math.floor(day_of_era / 36524)
    - math.floor(day_of_era / 146096)) / 365)
  local day_of_year = day_of_era - (365 * year_of_era + math.floor(year_of_era / 4) - math.floor(year_of_era / 100))
  local month_from_march = math.floor((5 * day_of_year + 2) / 153)
  local day = day_of_year - math.floor((153 * month_from_march + 2) / 5) + 1
  local month = month_from_march < 10 and month_from_march + 3 or month_from_march - 9
  local year = year_of_era + era * 400
  if month <= 2 then year = year + 1 end
  return year, month, day
end

-- The three texts a claim writes for an instant: Unix seconds with six decimals
-- ('1764217800.123456'), RQ's timestamp ('2025-11-27T04:30:00.123456Z', rq.utils.utcformat) and
-- the API's ('2025-11-27T04:30:00.123Z', webapp/infra/clock.py: milliseconds, truncated).
local function clock_texts(seconds, micros)
  local days = math.floor(seconds / 86400)
  local in_day = seconds - days * 86400
  local year, month, day = civil_date(days)
  local stamp = string.format('%04d-%02d-%02dT%02d:%02d:%02d', year, month, day, math.floor(in_day / 3600),
    math.floor(in_day % 3600 / 60), in_day % 60)
  return string.format('%d.%06d', seconds, micros), string.format('%s.%06dZ', stamp, micros),
    string.format('%s.%03dZ', stamp, math.floor(micros / 1000))
end

-- Now, by Redis's clock (TIME), as `clock_texts` writes it.
local function redis_clock()
  local time = redis.call('TIME')
  return clock_texts(tonumber(time[1]), tonumber(time[2]))
end
