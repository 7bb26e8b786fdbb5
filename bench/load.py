"""Load benchmark: a thin script over ``wcnotify.bench.load`` (also ``wcnotify bench load``).

    .venv/bin/python bench/load.py [--duration 300] [--wallets 5000] [--send-accounts 200] [--interval 1]
                                   [--churners 4] [--database-url URL] [--svg docs/load.svg]
"""

from wcnotify.bench.load import main

if __name__ == "__main__":
    main()
