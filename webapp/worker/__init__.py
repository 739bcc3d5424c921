"""The worker runtime (`python worker.py`): the supervisor and its worker processes, the fast
worker and its STEP, recovery of jobs whose worker died, and the scheduler thread."""
