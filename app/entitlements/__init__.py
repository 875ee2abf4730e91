"""The permission center's catalogues: membership tiers and their benefits, staff roles."""
