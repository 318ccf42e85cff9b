"""Ingestion: folders of documents -> chunks -> embeddings -> a Chroma collection.

The core is plain functions and small classes (`pipeline.ingest` is the entry point); the
command line in `ingest.cli` only validates flags, calls the core and prints the report.
"""
