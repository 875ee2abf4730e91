"""Background work on procrastinate: the queue (queue.py), the jobs (tasks.py), running them (runner.py)."""
