"""The OCI distribution-spec client.

Owns: talking to registries (transport, auth challenges and tokens, credentials, the
registries.conf-style configuration, manifests and blobs). Must not: touch the image store or
print; ops/pull.py and ops/push.py join it with the store.
"""
