"""mercato.domain: frozen value objects shared by every layer (pure, no I/O).

- ``domain.jobs``  — job specs, limits, execution receipts, compute units
- ``domain.deals`` — deal terms, on-chain deal records, deal ids, job Merkle roots
- ``domain.wire``  — the requester ↔ provider HTTP messages
"""
