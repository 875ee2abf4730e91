"""Ingestion: channel records in their native shapes, standardized by the data dictionary."""
