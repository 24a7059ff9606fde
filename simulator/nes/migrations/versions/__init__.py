"""Revisions of the NES schema."""
