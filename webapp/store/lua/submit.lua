-- uses: submission
-- A submission's admission checks and writes in one step (webapp/store/admission.py): the rate
-- limit, the idempotency key and the queue-depth cap are checked first and, only if all pass,
-- the writes run, so a submission is one round trip and all-or-nothing.
--
-- ARGV: the fields of lib/submission.lua, from ARGV[1] on.
return admit_and_write(ARGV, 1)
