"""Reference agents for recgym environments: baselines, SB3 recommenders, LLM trainers."""
