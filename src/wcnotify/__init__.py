"""wcnotify: a self-hostable, wire-compatible implementation of WalletConnect Notify."""

__version__ = "0.1.0"
