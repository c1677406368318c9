"""Model adapters: what the protocol layer needs from a detector (see ``base.Adapter``)."""

DEFAULT_ADAPTER = 'ls_extensions.ml_backend.adapters.mmdet_adapter.MMDetAdapter'
