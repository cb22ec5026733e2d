"""Lambda entry points, one module per function. Each is thin: parse, call one use case, map errors."""
