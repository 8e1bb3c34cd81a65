"""The process: configuration from the environment, JSON logs, memory limits, request deadlines
and admission (how much work is let in at once)."""
