"""Mercato: a decentralized compute marketplace.

Providers sell sandboxed compute for escrowed payment; requesters get results that
can be checked by deterministic re-execution. See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
