"""Bytes to pixels and back: decoding with its cost checks, encoding, pixel math on the result,
and full-resolution upsampling. Raises its own errors (errors.py); knows nothing of HTTP."""
