"""Readers for the files Asterisk itself uses (its .conf format)."""
