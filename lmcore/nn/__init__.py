"""The recurrent language model: the settings and gates of each architecture, the cells' equations, the time loop and its training speed-ups."""
