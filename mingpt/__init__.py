"""minGPT, the book's package: a GPT built chapter by chapter (see book/)."""

__version__ = "0.1.0"
