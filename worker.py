"""Start one RQ worker for myapp: ``python worker.py``."""

from myapp import create_app
from myapp.worker import run_worker

if __name__ == "__main__":
    run_worker(create_app())
