"""Layer tars: secure unpacking (whiteouts as overlay whiteouts), compression, hashing."""
