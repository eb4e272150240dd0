"""Weights: reading checkpoint files, checking a state dict against a model, checksums and the release
manifest, the Hugging Face Hub layout. Nothing here knows a family: the models layer above hands in the
model and its family's key mapping."""
from .checkpoint import (CheckpointError, CheckpointMismatchError, check_pretrained, check_state_dict,
                         partial_loading, read_checkpoint, unwrap_state_dict)
from .checksum import (MANIFEST_PATH, ChecksumMismatchError, download_verified, expected_checksum, manifest_entry,
                       check_checksum_arg, read_manifest, sha256_of, verify_checksum)
from .hub import model_card, push_to_hub, save_for_hub
from .resolve import resolve_weights_file

__all__ = ['CheckpointError', 'CheckpointMismatchError', 'ChecksumMismatchError', 'MANIFEST_PATH', 'check_checksum_arg',
           'check_pretrained', 'check_state_dict', 'download_verified', 'expected_checksum', 'manifest_entry', 'model_card', 'partial_loading',
           'push_to_hub', 'read_checkpoint', 'read_manifest', 'resolve_weights_file', 'save_for_hub', 'sha256_of',
           'unwrap_state_dict', 'verify_checksum']
