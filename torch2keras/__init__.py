"""torch2keras: compile PyTorch models to Keras 3, TensorFlow SavedModel and TFLite through a typed graph IR."""

__version__ = "0.1.0"
