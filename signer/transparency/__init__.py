"""Transparency-log primitives, pure and I/O-free.

`merkle` (RFC 6962 / RFC 9162 trees and proofs), `checkpoint` (signed-note checkpoints),
`sct` (RFC 6962 v1 SCTs for precertificates) and `rekor` (Rekor v1 hashedrekord bodies and
inclusion promises). The service builds with them; our verifier checks with them.
"""
