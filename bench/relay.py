"""Relay benchmark: a thin script over ``wcnotify.bench.relay`` (also ``wcnotify bench relay``).

    .venv/bin/python bench/relay.py [--pairs 32] [--topics 8] [--window 16] [--size 300] [--seconds 4] [--idle 5000]
"""

from wcnotify.bench.relay import main

if __name__ == "__main__":
    main()
