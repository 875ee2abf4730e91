"""Compiled reads: known queries of users answered from one statement per database."""
