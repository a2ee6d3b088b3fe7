"""gankit: generative adversarial networks on PyTorch, from the 1D toy to images.

    import gankit
    run = gankit.train("toy-gaussian")      # -> pathlib.Path of the run folder
    model = gankit.load(run)
    points = model.sample(1000, seed=0)
"""

from gankit.api import TrainedGAN, load, train
from gankit.errors import GankitError

__version__ = "0.1.0"
__all__ = ["GankitError", "TrainedGAN", "__version__", "load", "train"]
