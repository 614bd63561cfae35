"""recgym: Gymnasium environments for recommendation with LLM policies, users and judges."""
__version__ = "0.1.0"
