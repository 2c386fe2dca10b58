"""qcompress: train adapters through small quantum circuits, deploy them as plain dense weights.

The package follows the data flow of one run, folder by folder:
circuits -> backends -> generators -> methods -> training -> export -> runtime.
"""

__version__ = "0.1.0"
