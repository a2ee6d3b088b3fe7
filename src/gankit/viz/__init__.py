"""Pictures of GAN training: image grids, 1D/2D toy frames and GIFs, and loss curves."""
