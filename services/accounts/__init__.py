"""Parents and operators: logging in, tokens, passwords, rate limits, operator accounts."""
