"""Built-in plugins: each module registers one stage's components through the public hooks."""
