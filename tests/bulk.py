"""Many RQ-compatible finished jobs, written straight to Redis (for listing at scale).

A Lua script copies one real RQ job hash under many ids, so 100k jobs take seconds: the
client would spend most of its time packing half a million commands otherwise.
"""

from __future__ import annotations

from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from webapp.store import listing

# KEYS: the index sets, then the finished registry. ARGV[1] job key prefix, ARGV[2] id prefix,
# ARGV[3] first number, ARGV[4] count, ARGV[5] first score, ARGV[6] registry score, ARGV[7..] fields.
_COPY_JOB = """
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
for n = tonumber(ARGV[3]), tonumber(ARGV[3]) + tonumber(ARGV[4]) - 1 do
  local id = ARGV[2] .. string.format('%08d', n)
  redis.call('HSET', ARGV[1] .. id, unpack(fields))
  local score = tonumber(ARGV[5]) + n
  for k = 1, #KEYS - 1 do redis.call('ZADD', KEYS[k], score, id) end
  redis.call('ZADD', KEYS[#KEYS], ARGV[6], id)
end
return 1
"""


def write_finished_jobs(connection: Redis, count: int, *, queue: str = "default", batch: int = 10000) -> list[str]:
    """`count` finished `add` jobs, one microsecond apart, indexed as the submit path indexes them.

    Returns the ids oldest first. Each hash is what RQ itself writes for a finished job, so
    `Job.fetch` and the API read them like any other.
    """
    template = Job.create(
        "jobs.basic.add",
        kwargs={"a": 1, "b": 2},
        connection=connection,
        serializer=JSONSerializer,
        origin=queue,
        meta={"name": "add"},
        status=JobStatus.FINISHED,
    )
    template.enqueued_at = template.started_at = template.ended_at = template.created_at
    fields = [part for pair in template.to_dict().items() for part in pair]
    first_score = listing.score_of(template) - count
    keys = [*listing.index_keys(queue, "add"), FinishedJobRegistry.key_template.format(queue)]
    expiry = int(template.created_at.timestamp()) + 86400
    for first in range(0, count, batch):
        size = min(batch, count - first)
        connection.eval(
            _COPY_JOB,
            len(keys),
            *keys,
            Job.redis_job_namespace_prefix,
            "bulk-",
            first,
            size,
            first_score,
            expiry,
            *fields,
        )
    return [f"bulk-{number:08d}" for number in range(count)]
