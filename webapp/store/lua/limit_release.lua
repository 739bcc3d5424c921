-- uses: limits
-- Give back the slot of a limited job that ended outside STEP's finish (a failure, a stop, RQ's
-- own success path, a refusal, a recovered job): lib/limits.lua. Idempotent.
-- ARGV: 1 the limit key, 2 the job id.
limit_release(ARGV[1], ARGV[2])
return 1
