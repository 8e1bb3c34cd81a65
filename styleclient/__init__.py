"""Python client for styleserve: `StyleClient` to import, `python -m styleclient` to run."""

from styleclient.client import StyleClient, StyleServeError, gcloud_identity_token

__all__ = ["StyleClient", "StyleServeError", "gcloud_identity_token"]
