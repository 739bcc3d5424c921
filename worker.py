"""Worker entry point: `python worker.py` (Procfile `worker:`); scale with more processes.

Installed with `pip install .`, the same is the `jobsvc-worker` command (webapp/console.py).
"""

import sys

from webapp import create_app
from webapp.worker.main import main

if __name__ == "__main__":
    sys.exit(main(create_app))
