"""LaDDer: latent data distribution modelling with a generative prior (Lin & Clark, BMVC 2020)."""

__version__ = "0.1.0"
