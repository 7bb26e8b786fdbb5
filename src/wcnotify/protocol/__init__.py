"""The sans-I/O protocol core.

Everything here is a pure function or a frozen dataclass: no sockets, files, clocks or event loops.
Callers pass bytes, keys and ``now`` in; this is what lets every service share it and the tests
drive it exhaustively.
"""
