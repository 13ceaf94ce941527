"""nvnmd.analysis: MSD, diffusion coefficients, Nernst-Einstein conductivity, Arrhenius fits."""
