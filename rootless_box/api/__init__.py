"""The Engine API front end (`system service`): Docker's HTTP API over the same ops the CLI
calls. httpserver.py (sockets, threads, HTTP), routes.py (endpoints), jobs.py and
forkserver.py (what forks runs in a single-threaded process), service.py (the order)."""
