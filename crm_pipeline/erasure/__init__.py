"""Erasure (GDPR / CCPA): remove a person everywhere and keep them out of later loads."""
