"""Fuzzing benchmark: a thin script over ``wcnotify.bench.fuzz`` (also ``wcnotify bench fuzz``).

    .venv/bin/python bench/fuzz.py [--runs 1000000] [--targets envelope,jwt,...] [--engine atheris|builtin]
                                   [--jobs 2] [--seed 0]
"""

from wcnotify.bench.fuzz import main

if __name__ == "__main__":
    main()
