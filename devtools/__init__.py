"""Helpers the tests and the benchmarks share: a real function server on 127.0.0.1 and
synthetic photos. Development only; nothing here is deployed."""
