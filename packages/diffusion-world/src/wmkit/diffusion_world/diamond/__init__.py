"""DIAMOND (Alonso et al., 2024, "Diffusion for World Modeling: Visual Details Matter in Atari")."""
