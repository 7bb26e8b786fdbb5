"""Fan-out benchmark: a thin script over ``wcnotify.bench.fanout`` (also ``wcnotify bench fanout``).

    .venv/bin/python bench/fanout.py [--wallets 10000] [--databases sqlite,postgres] [--rounds 3] [--timeout 120]
                                     [--wallet-procs 2] [--profile DIR]
"""

from wcnotify.bench.fanout import main

if __name__ == "__main__":
    main()
