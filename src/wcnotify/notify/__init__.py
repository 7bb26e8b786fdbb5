"""The notify server: dapp HTTP API, wallet handlers over the relay, and their storage."""
