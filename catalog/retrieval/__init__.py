"""Mediated selection: CLAP embeddings in pgvector, searched with consent filtering in SQL."""
