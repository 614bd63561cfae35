"""Small helpers shared by recgym's packages (nothing here imports torch)."""
