"""edgemem: memory-based spiking models from training to a microcontroller."""

__version__ = "0.1.0"
